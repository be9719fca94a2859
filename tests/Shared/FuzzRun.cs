using System.Diagnostics;
using CsCheck;
using MiniOmni.SK.ModelFiles;
using Xunit.Abstractions;

namespace MiniOmni.SK.Tests;

/// <summary>
/// Runs a fuzz property with CsCheck. In CI (no CsCheck environment variable set, see <see cref="FuzzSettings"/>) it runs a
/// fixed number of cases, each from a fixed seed, so every run checks the same inputs. With <c>CsCheck_Iter</c>,
/// <c>CsCheck_Time</c> or <c>CsCheck_Seed</c> set it hands over to CsCheck's own sampling (random seeds, CsCheck's thread
/// count, shrinking to the smallest failing case, a seed to replay it), for as many cases or seconds as those say.
/// Every case must end in success or in a clean <see cref="ModelFileException"/>: one whose <see cref="ModelFileException.FilePath"/>
/// is a file or directory that exists (the case's own) and that names the place at fault through
/// <see cref="ModelFileException.Location"/> (its key or byte offset). Anything else fails with the case's seed,
/// and a native abort ends the test host, which fails the run. The refused and the accepted cases are held to floors.
/// </summary>
public static class FuzzRun
{
    /// <summary>The longest one case may take before it counts as a hang.</summary>
    public static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Whether CsCheck's environment settings ask for a longer, random run.</summary>
    public static bool OnDemand => FuzzSettings.OnDemand;

    /// <summary>
    /// Checks <paramref name="property"/> on cases from <paramref name="gen"/>: <paramref name="ciCases"/> fixed seeds of
    /// stream <paramref name="stream"/> in CI, or CsCheck's own sampling on demand. Reports the count and the time, and
    /// holds the refused and the accepted cases to <paramref name="minRefused"/> and <paramref name="minAccepted"/>.
    /// Every refusal must name its place through <see cref="ModelFileException.Location"/> (a key, tensor, field, entry or
    /// byte offset): every format read here (GGUF, torch zips and their pickles, safetensors, JSON, YAML) has one.
    /// </summary>
    /// <returns>How many cases ran and how many the readers refused with a <see cref="ModelFileException"/>.</returns>
    public static (int Cases, int Refused) Check<T>(string name, Gen<T> gen, Action<T> property, int ciCases, uint stream, ITestOutputHelper output,
        int minRefused, int minAccepted, Func<T, string>? print = null)
    {
        int cases = 0, refused = 0;
        var errors = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        void Case(T input)
        {
            Interlocked.Increment(ref cases);
            var outcome = RunBounded(() => property(input));
            if (outcome is ModelFileException error)
            {
                Interlocked.Increment(ref refused);
                errors.AddOrUpdate(Shape(error), 1, (_, n) => n + 1);
            }
        }

        var clock = Stopwatch.StartNew();
        if (OnDemand)
        {
            gen.Sample(Case, print: print);
        }
        else
        {
            for (int i = 0; i < ciCases; i++)
            {
                gen.Sample(Case, seed: new PCG(stream, (ulong)i * 0x9E3779B97F4A7C15UL).ToString(), iter: 1, threads: 1, print: print);
            }
        }

        output.WriteLine($"{name}: {cases} cases in {clock.Elapsed.TotalSeconds:F1} s ({(OnDemand ? "CsCheck sampling" : "fixed seeds")}): {cases - refused} accepted, {refused} refused with ModelFileException.");
        foreach (var (shape, count) in errors.OrderByDescending(e => e.Value).Take(12))
        {
            output.WriteLine($"  {count,5} x {shape}");
        }

        FuzzSettings.RequireFloors(name, cases, refused, minRefused, minAccepted);
        return (cases, refused);
    }

    // Runs one case on a thread of its own with a deadline: a hang fails the case instead of the whole run. Returns the
    // ModelFileException a refused case ends in, or null; any other exception propagates.
    private static ModelFileException? RunBounded(Action run)
    {
        var work = Task.Factory.StartNew(run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            if (!work.Wait(CaseTimeout))
            {
                throw new TimeoutException($"A case ran longer than {CaseTimeout.TotalSeconds} s: a hang.");
            }

            return null;
        }
        catch (AggregateException e) when (e.InnerException is ModelFileException refused)
        {
            if (string.IsNullOrEmpty(refused.FilePath) || !Path.IsPathFullyQualified(refused.FilePath) || !(File.Exists(refused.FilePath) || Directory.Exists(refused.FilePath)))
            {
                throw new InvalidOperationException($"A ModelFileException whose FilePath is not a file of the case: '{refused.FilePath}': {refused.Message}", refused);
            }

            if (refused.Location is null)
            {
                throw new InvalidOperationException($"A ModelFileException that names no key, tensor, entry or byte offset: {refused.Message}", refused);
            }

            return refused;
        }
        catch (AggregateException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    // The error's file name and key (or, for a fault of the file's structure, that it named a byte), for a tally of what the readers refused.
    private static string Shape(ModelFileException error) => $"{Path.GetFileName(error.FilePath)} {error.Key ?? "byte offset"}";
}
