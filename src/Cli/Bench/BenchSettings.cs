using System.Diagnostics;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>What one <c>miniomni bench</c> run measures.</summary>
internal sealed record BenchSettings
{
    /// <summary>Runs per measurement; the median is reported.</summary>
    public int Repeats { get; init; } = 3;

    /// <summary>CPU threads for every stage (null: all cores).</summary>
    public int? Threads { get; init; }

    /// <summary>CPU threads of the speech decoder in whole answers (null: as <see cref="Threads"/>).</summary>
    public int? CodecThreads { get; init; }

    /// <summary>Only the encoder's figures (exact and fast, and a quantized model's matrices against f32).</summary>
    public bool EncoderOnly { get; init; }

    /// <summary>Only whole answers through the engine, not the stages one by one.</summary>
    public bool AnswersOnly { get; init; }

    /// <summary>Steps of each whole answer (256 is about 21 s of speech).</summary>
    public int AnswerSteps { get; init; } = 256;

    /// <summary>Numbers of answers run at once for the concurrency curve.</summary>
    public IReadOnlyList<int> Concurrency { get; init; } = [1, 2, 4, 8];

    /// <summary>Length of the question that joins speaking answers, in seconds (its prompt is decoded in slices).</summary>
    public double JoiningQuestionSeconds { get; init; } = 10;
}

/// <summary>Helpers shared by the benchmarks: medians, progress, memory.</summary>
internal static class BenchTools
{
    /// <summary>The console the human-readable tables go to: standard error, so standard output stays JSON.</summary>
    public static IAnsiConsole Console { get; } = CreateConsole();

    private static IAnsiConsole CreateConsole()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(System.Console.Error) });
        if (System.Console.IsErrorRedirected)
        {
            // Written to a file: wide enough for the tables' rows to stay on one line.
            console.Profile.Width = 200;
        }

        return console;
    }

    /// <summary>The median of <paramref name="repeats"/> timed runs of <paramref name="work"/>, after one warm-up, in milliseconds.</summary>
    public static double Median(int repeats, Action work)
    {
        work(); // warm-up: first-call allocation and JIT are not what a long-running host pays
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            work();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        return Math.Round(Percentile(times, 0.5), 2);
    }

    /// <summary>The <paramref name="fraction"/> quantile of <paramref name="values"/> (nearest rank).</summary>
    public static double Percentile(IEnumerable<double> values, double fraction)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(fraction * sorted.Count) - 1, 0, sorted.Count - 1)];
    }

    /// <summary>Runs <paramref name="work"/> under a status line naming it.</summary>
    public static T Status<T>(string what, Func<T> work)
    {
        T result = default!;
        Console.Status().Start($"bench: {what}", _ => result = work());
        return result;
    }

    /// <summary>The process's resident memory now, in MiB.</summary>
    public static double ResidentMiB()
    {
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64 / (1024.0 * 1024.0);
    }

    /// <summary>The process's peak resident memory so far, in MiB.</summary>
    public static double PeakResidentMiB()
    {
        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64 / (1024.0 * 1024.0);
    }
}

/// <summary>Samples the process's resident memory while it lives; the highest value seen is the peak of that span.</summary>
internal sealed class MemorySampler : IDisposable
{
    private readonly Thread _thread;
    private volatile bool _stop;
    private double _peak;

    public MemorySampler()
    {
        _peak = BenchTools.ResidentMiB();
        _thread = new Thread(() =>
        {
            while (!_stop)
            {
                double now = BenchTools.ResidentMiB();
                if (now > _peak)
                {
                    _peak = now;
                }

                Thread.Sleep(20);
            }
        })
        { IsBackground = true, Name = "bench memory sampler" };
        _thread.Start();
    }

    /// <summary>The highest resident memory seen so far, in MiB.</summary>
    public double PeakMiB => Math.Max(_peak, BenchTools.ResidentMiB());

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
