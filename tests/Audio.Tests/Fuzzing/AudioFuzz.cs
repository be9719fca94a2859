using System.Collections.Concurrent;
using System.Diagnostics;
using CsCheck;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace MiniOmni.SK.Audio.Tests.Fuzzing;

/// <summary>
/// Runs a fuzz property two ways. By default (CI) a fixed number of cases drawn from a fixed seed, the same cases every
/// run; a failure names the case's CsCheck seed. With any of CsCheck's own environment settings present
/// (<c>CsCheck_Iter</c>, <c>CsCheck_Time</c>, <c>CsCheck_Seed</c>) the property runs through <see cref="Check.Sample{T}(Gen{T}, Action{T}, Action{string}?, string?, long, int, int, Func{T, string}?, ILogger?)"/>
/// instead: as many or as long as asked, on every core, with shrinking, or replaying the one seed given.
/// </summary>
internal static class AudioFuzz
{
    /// <summary>A single case slower than this is a hang, not a slow decode (the largest inputs decode in well under a second).</summary>
    public static readonly TimeSpan CaseTimeLimit = TimeSpan.FromSeconds(20);

    /// <summary>True when CsCheck's environment settings ask for more than the fixed CI run (read as every fuzz suite reads them).</summary>
    public static bool OnDemand => FuzzSettings.OnDemand;

    /// <summary>
    /// Checks <paramref name="property"/> on <paramref name="ciCases"/> fixed cases, or as CsCheck's settings say, and holds
    /// the cases refused and the cases decoded to their floors; returns the cases run and the cases refused.
    /// </summary>
    public static (long Cases, long Refused) Run<T>(Gen<T> gen, Action<T> property, int ciCases, ulong ciSeed, ITestOutputHelper output, string name, int minRefused, int minAccepted)
    {
        var clock = Stopwatch.StartNew();
        Outcomes.Value = new ConcurrentDictionary<string, int>();
        Slowest.Value = (TimeSpan.Zero, "");
        long cases = 0;
        void Counted(T value)
        {
            Interlocked.Increment(ref cases);
            property(value);
        }

        if (OnDemand)
        {
            gen.Sample(Counted, writeLine: output.WriteLine);
        }
        else
        {
            var pcg = new PCG(1, ciSeed);
            for (int i = 0; i < ciCases; i++)
            {
                ulong state = pcg.State;
                T value = gen.Generate(pcg, null, out _);
                try
                {
                    Counted(value);
                }
                catch (Exception ex)
                {
                    throw new XunitException($"{name}: case {i} failed; replay it with CsCheck_Seed={pcg.ToString(state)}.\n{ex}");
                }
            }
        }

        output.WriteLine($"{name}: {cases} cases in {clock.Elapsed.TotalSeconds:F1} s{(OnDemand ? " (CsCheck settings from the environment)" : "")}; " +
            string.Join(", ", Outcomes.Value.OrderByDescending(o => o.Value).Select(o => $"{o.Key} {o.Value}")) +
            $"; slowest {Slowest.Value?.Elapsed.TotalMilliseconds:F0} ms: {Slowest.Value?.Case}");
        long refused = cases - Outcomes.Value.GetValueOrDefault("decoded");
        FuzzSettings.RequireFloors(name, cases, refused, minRefused, minAccepted);
        return (cases, refused);
    }

    // What the cases of the current run ended in (shared by CsCheck's threads through the async-local's dictionary).
    private static readonly AsyncLocal<ConcurrentDictionary<string, int>?> Outcomes = new();

    private static readonly AsyncLocal<(TimeSpan Elapsed, string Case)?> Slowest = new();

    private static void Tally(string outcome) => Outcomes.Value?.AddOrUpdate(outcome, 1, (_, n) => n + 1);

    /// <summary>
    /// The property every audio input must meet: it decodes to 1 to 480,000 finite samples, or fails with an
    /// <see cref="AudioFormatException"/> naming the input, in bounded time and memory; anything else fails the case.
    /// </summary>
    public static void DecodesOrFailsCleanly(AudioCase input)
    {
        // The case runs on a task of its own so that a hang fails this case (naming it) instead of stalling the run.
        var clock = Stopwatch.StartNew();
        var decode = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                return (Samples: input.Decode(), Error: (AudioFormatException?)null, Allocated: GC.GetAllocatedBytesForCurrentThread() - before);
            }
            catch (AudioFormatException ex)
            {
                return (Samples: (float[]?)null, Error: ex, Allocated: GC.GetAllocatedBytesForCurrentThread() - before);
            }
        });
        if (!decode.Wait(CaseTimeLimit))
        {
            throw new XunitException($"{input}: still decoding after {CaseTimeLimit.TotalSeconds} s.");
        }

        var (samples, error, allocated) = decode.Result;
        if (samples is not null)
        {
            if (samples.Length is 0 or > WhisperLogMel.WindowSampleCount)
            {
                throw new XunitException($"{input}: decoded to {samples.Length} samples.");
            }

            int bad = AudioSamples.IndexOfNonFinite(samples);
            if (bad >= 0)
            {
                throw new XunitException($"{input}: sample {bad} is {samples[bad]}.");
            }

            Tally("decoded");
        }
        else
        {
            if (error!.InputName != AudioCase.InputName)
            {
                throw new XunitException($"{input}: the error's InputName is '{error.InputName}', not the input's: {error.Message}");
            }

            // A fault in the structure or the coded data has a place in the input; the error must say where.
            if (error.Problem is AudioInputProblem.CorruptHeader or AudioInputProblem.Truncated or AudioInputProblem.CorruptData && error.ByteOffset is null)
            {
                throw new XunitException($"{input}: a {error.Problem} error without its ByteOffset: {error.Message}");
            }

            Tally(error.ByteOffset is null ? $"{error.Problem} (no offset)" : error.Problem.ToString());
        }

        if (Slowest.Value is { } slowest && clock.Elapsed > slowest.Elapsed)
        {
            Slowest.Value = (clock.Elapsed, input.ToString());
        }

        if (allocated > AudioCase.AllocationLimit)
        {
            throw new XunitException($"{input}: allocated {allocated / 1e6:F0} MB.");
        }
    }
}
