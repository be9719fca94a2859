using Xunit.Sdk;

namespace MiniOmni.SK.Tests;

/// <summary>
/// What every fuzz suite (model files, engine loads, audio) reads from the environment, read one way: with any of
/// CsCheck's own settings (<c>CsCheck_Iter</c>, <c>CsCheck_Time</c>, <c>CsCheck_Seed</c>) set to something, CsCheck samples
/// as they say (random seeds, its threads, shrinking, or the one seed to replay); without, each suite runs its fixed
/// cases from fixed seeds, the same every run. And the floors every fuzz target is held to.
/// </summary>
public static class FuzzSettings
{
    /// <summary>CsCheck's environment settings.</summary>
    public static readonly IReadOnlyList<string> Variables = ["CsCheck_Iter", "CsCheck_Time", "CsCheck_Seed"];

    /// <summary>True when CsCheck's settings ask for more than the fixed run (a blank value counts as unset).</summary>
    public static bool OnDemand { get; } = Variables.Any(name => !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(name)));

    /// <summary>True when <c>CsCheck_Seed</c> replays one seed.</summary>
    public static bool Replay { get; } = !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("CsCheck_Seed"));

    /// <summary>
    /// Fails unless at least <paramref name="minRefused"/> cases were refused with a clean error and at least
    /// <paramref name="minAccepted"/> were accepted: a generator that stops reaching the checks, or one that stops producing
    /// anything they accept, is noticed instead of passing. The fixed run is held to the floors as given; a run CsCheck
    /// samples (any number of cases) only to one of each where the floor asks for any; a replay of one seed
    /// (<c>CsCheck_Seed</c>, the command a failure prints) to none, since its one case is either.
    /// </summary>
    public static void RequireFloors(string name, long cases, long refused, int minRefused, int minAccepted)
    {
        if (Replay)
        {
            return;
        }

        long accepted = cases - refused;
        int needRefused = OnDemand ? Math.Min(minRefused, 1) : minRefused;
        int needAccepted = OnDemand ? Math.Min(minAccepted, 1) : minAccepted;
        if (refused < needRefused || accepted < needAccepted)
        {
            throw new XunitException($"{name}: {refused} of {cases} cases refused (floor {needRefused}) and {accepted} accepted (floor {needAccepted}): " +
                "the generator no longer reaches the checks, or no longer produces what they accept.");
        }
    }
}
