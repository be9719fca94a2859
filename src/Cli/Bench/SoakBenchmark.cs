using System.Diagnostics;
using MiniOmni.SK.Engine;
using Spectre.Console;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Speech;
using static MiniOmni.SK.Cli.Bench.BenchTools;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>
/// Many answers through one engine, as a long-running server would take them: every task in turn, four at a time,
/// every fifth cancelled part-way. Reports the resident memory every 100 answers and its slope, and every error.
/// </summary>
internal static class SoakBenchmark
{
    private const int AtOnce = 4;
    private const int ReportEvery = 100;

    /// <summary>Runs <paramref name="answers"/> answers and returns the soak's figures.</summary>
    public static Dictionary<string, object> Run(ModelDirectory directory, BenchSettings settings, int answers)
    {
        using var engine = Status("loading the engine", () => MiniOmniEngine.Load(directory.Path, new MiniOmniEngineOptions { Threads = settings.Threads, CodecThreads = settings.CodecThreads }));
        float[] question = AnswerBenchmarks.Question();
        var random = new Random(7);
        // Budgets between 12 and 40 steps keep the soak about the engine's churn, not the length of answers.
        var requests = Enumerable.Range(0, answers).Select(i => Request(i, question, random.Next(12, 41))).ToList();
        var errors = new List<string>();
        var memory = new List<(int Answers, double ResidentMiB)>();
        int done = 0, cancelled = 0, completed = 0;
        var clock = Stopwatch.StartNew();
        using var slots = new SemaphoreSlim(AtOnce);
        var progress = new object();
        BenchTools.Console.Progress().Start(context =>
        {
            var bar = context.AddTask($"soak: {answers} answers, {AtOnce} at a time", maxValue: answers);
            var running = new List<Task>();
            for (int i = 0; i < answers; i++)
            {
                slots.Wait();
                int index = i;
                running.Add(Task.Run(async () =>
                {
                    try
                    {
                        bool cancel = index % 5 == 4;
                        using var cancellation = new CancellationTokenSource();
                        if (cancel)
                        {
                            // Every fifth answer is cancelled part-way: at its first text or speech, or at the latest after a moment.
                            cancellation.CancelAfter(TimeSpan.FromMilliseconds(50 + index % 7 * 40));
                        }

                        try
                        {
                            await foreach (var item in engine.GenerateAsync(requests[index], cancellation.Token).ConfigureAwait(false))
                            {
                                if (cancel)
                                {
                                    await cancellation.CancelAsync().ConfigureAwait(false);
                                }
                            }

                            Interlocked.Increment(ref completed);
                        }
                        catch (OperationCanceledException) when (cancel)
                        {
                            Interlocked.Increment(ref cancelled);
                        }
                    }
                    catch (Exception e)
                    {
                        lock (errors)
                        {
                            errors.Add($"answer {index} ({requests[index].Task}): {e.GetType().Name}: {e.Message}");
                        }
                    }
                    finally
                    {
                        slots.Release();
                        lock (progress)
                        {
                            done++;
                            bar.Increment(1);
                            if (done % ReportEvery == 0)
                            {
                                // After a full collection, so the figure is what the process keeps, not garbage not yet collected.
                                GC.Collect();
                                GC.WaitForPendingFinalizers();
                                memory.Add((done, Math.Round(ResidentMiB(), 1)));
                            }
                        }
                    }
                }));
                running.RemoveAll(task => task.IsCompleted);
            }

            Task.WhenAll(running).GetAwaiter().GetResult();
        });

        // The slope over the second half, once caches and pools have reached their working size.
        var settled = memory.Skip(memory.Count / 2).ToList();
        double slope = settled.Count >= 2 ? Slope(settled) * 1000 : double.NaN;
        return new Dictionary<string, object>
        {
            ["answers"] = answers,
            ["at_once"] = AtOnce,
            ["completed"] = completed,
            ["cancelled"] = cancelled,
            ["errors"] = errors.Count,
            ["error_messages"] = errors.Take(20).ToList(),
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["resident_mib_every_100_answers"] = memory.Select(m => m.ResidentMiB).ToList(),
            ["resident_mib_slope_per_1000_answers_second_half"] = Math.Round(slope, 2),
            ["peak_working_set_mib"] = Math.Round(PeakResidentMiB(), 1),
        };
    }

    // Every task in turn, batch-parallel among them; text-in tasks ask varied questions.
    private static MiniOmniRequest Request(int index, float[] question, int budget) => (index % 6) switch
    {
        0 => new MiniOmniRequest { Task = MiniOmniTask.A1A2, Audio = question, EncoderMode = EncoderMode.Fast, MaxTokens = budget },
        1 => new MiniOmniRequest { Task = MiniOmniTask.A1A2, Audio = question, EncoderMode = EncoderMode.Fast, BatchParallel = true, MaxTokens = budget },
        2 => new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = question, EncoderMode = EncoderMode.Fast, MaxTokens = budget },
        3 => new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = question, EncoderMode = EncoderMode.Fast, MaxTokens = budget },
        4 => new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = $"Tell me about number {index}.", MaxTokens = budget },
        _ => new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = $"What comes after {index}?", MaxTokens = budget, Sampling = new SamplingOptions { Temperature = 0.8f, Seed = index } },
    };

    // Least-squares slope of resident memory over answers, in MiB per answer.
    private static double Slope(IReadOnlyList<(int Answers, double ResidentMiB)> points)
    {
        double meanX = points.Average(p => p.Answers), meanY = points.Average(p => p.ResidentMiB);
        double covariance = points.Sum(p => (p.Answers - meanX) * (p.ResidentMiB - meanY));
        double variance = points.Sum(p => (p.Answers - meanX) * (p.Answers - meanX));
        return variance == 0 ? 0 : covariance / variance;
    }
}
