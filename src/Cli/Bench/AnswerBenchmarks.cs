using System.Diagnostics;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Speech;
using static MiniOmni.SK.Cli.Bench.BenchTools;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>
/// Whole answers through the engine: one answer, batch-parallel, the concurrency curve (1, 2, 4, 8 answers at once),
/// a long question joining speaking answers, and the peak memory of a process that answers (in a child process).
/// </summary>
internal static class AnswerBenchmarks
{
    /// <summary>The question every answer hears: 1.2 s, encoded with the fast encoder.</summary>
    public static float[] Question(double seconds = 1.2)
    {
        var random = new Random(4);
        return [.. Enumerable.Range(0, (int)(seconds * 16000)).Select(i => (float)(0.1 * Math.Sin(i * 0.03) + 0.01 * (random.NextDouble() - 0.5)))];
    }

    /// <summary>Options of the engine every answer benchmark loads.</summary>
    public static MiniOmniEngineOptions EngineOptions(BenchSettings settings) =>
        new() { Threads = settings.Threads, CodecThreads = settings.CodecThreads, MaxConcurrentAnswers = Math.Max(4, settings.Concurrency.DefaultIfEmpty(1).Max()) };

    /// <summary>Runs the whole-answer figures into <paramref name="figures"/>.</summary>
    public static void Run(ModelDirectory directory, BenchSettings settings, Dictionary<string, object> figures)
    {
        using var engine = Status("loading the engine", () => MiniOmniEngine.Load(directory.Path, EngineOptions(settings)));
        // The engine measures its decode costs while idle; let it finish before the first figure.
        Status("engine, measuring decode costs", () => SpinWait.SpinUntil(() => engine.Scheduler.CostsMeasured, TimeSpan.FromMinutes(2)));
        float[] question = Question();
        figures["answer_steps"] = settings.AnswerSteps;
        foreach (bool parallel in new[] { false, true })
        {
            var request = new MiniOmniRequest { Audio = question, MaxTokens = settings.AnswerSteps, BatchParallel = parallel, EncoderMode = EncoderMode.Fast };
            string name = parallel ? "batch_parallel" : "single";
            // The first round warms up (and lets the engine measure its decode costs).
            Status($"answer, {name} (warm-up)", () => Level(engine, request, 1));
            figures[$"answer_{name}"] = Status($"answer, {name}", () => Level(engine, request, 1));
        }

        figures["engine_decode_costs"] = engine.Scheduler.Costs.ToString();
        figures["engine_bare_decode_1_row_ms"] = Math.Round(engine.Scheduler.Costs.StepMilliseconds(1), 2);
        figures["engine_text_head_type"] = engine.TextHeadType.ToString();
        foreach (int answers in settings.Concurrency)
        {
            var request = new MiniOmniRequest { Audio = question, MaxTokens = settings.AnswerSteps, EncoderMode = EncoderMode.Fast };
            figures[$"concurrent_{answers}"] = Status($"{answers} answer(s) at once", () => Level(engine, request, answers));
        }

        figures["joining_prompt"] = Status("a long question joining three speaking answers", () => Joining(engine, settings));
    }

    /// <summary>The peak working set of a process that loads the engine and answers <paramref name="answers"/> questions at once (run in a child process).</summary>
    public static Dictionary<string, object> Peak(ModelDirectory directory, BenchSettings settings, int answers)
    {
        using (var engine = MiniOmniEngine.Load(directory.Path, EngineOptions(settings) with { MaxConcurrentAnswers = Math.Max(4, answers) }))
        {
            var request = new MiniOmniRequest { Audio = Question(), MaxTokens = settings.AnswerSteps, EncoderMode = EncoderMode.Fast };
            Task.WhenAll(Enumerable.Range(0, answers).Select(_ => Completion(engine.GenerateAsync(request)))).GetAwaiter().GetResult();
        }

        return new Dictionary<string, object> { ["answers"] = answers, ["peak_working_set_mib"] = Math.Round(PeakResidentMiB(), 1) };
    }

    // Runs `answers` copies of the request at once, read asynchronously as a server would (blocked readers would hold
    // thread-pool threads the answers' codec work needs), and reports what they cost.
    private static Dictionary<string, object> Level(MiniOmniEngine engine, MiniOmniRequest request, int answers)
    {
        var before = engine.DecodeStatistics;
        engine.Scheduler.TakeLongestStepGap();
        using var memory = new MemorySampler();
        var clock = Stopwatch.StartNew();
        var completed = Task.WhenAll(Enumerable.Range(0, answers).Select(_ => Completion(engine.GenerateAsync(request)))).GetAwaiter().GetResult();
        double elapsed = clock.Elapsed.TotalSeconds;
        var used = engine.DecodeStatistics.Since(before);
        double speech = completed.Sum(a => a.SpeechSeconds);
        var firstSpeech = completed.Select(a => a.TimeToFirstSpeech?.TotalSeconds ?? double.NaN).ToList();
        double turns = Math.Max(1, used.StepDecodes);
        double Ms(TimeSpan time) => Math.Round(time.TotalMilliseconds / turns, 2);
        return new Dictionary<string, object>
        {
            ["answers"] = answers,
            ["seconds"] = Math.Round(elapsed, 2),
            ["speech_seconds"] = Math.Round(speech, 2),
            ["speech_seconds_per_second"] = Math.Round(speech / elapsed, 2),
            ["real_time_factor"] = Math.Round(elapsed / Math.Max(speech / answers, 1e-9), 3),
            ["worst_answer_real_time_factor"] = Math.Round(completed.Max(a => a.Elapsed.TotalSeconds / Math.Max(a.SpeechSeconds, 1e-9)), 3),
            ["first_speech_p50_s"] = Math.Round(Percentile(firstSpeech, 0.5), 3),
            ["first_speech_p95_s"] = Math.Round(Percentile(firstSpeech, 0.95), 3),
            ["first_speech_worst_s"] = Math.Round(firstSpeech.Max(), 3),
            ["decodes"] = used.Decodes,
            // The engine's step: every active answer's rows, from the embedding mix to the rules; the codec's chunks
            // run between steps and are shown beside it.
            ["step_ms"] = Ms(used.StepTime),
            ["step_split_ms"] = new Dictionary<string, double>
            {
                ["embedding_mix_and_batch"] = Ms(used.StepMixTime),
                ["llama_decode"] = Ms(used.StepDecodeTime),
                ["output_heads"] = Ms(used.StepHeadsTime),
                ["sampling_and_rules"] = Ms(used.StepSampleTime),
                ["codec_between_steps"] = Math.Round(used.WorkTime.TotalMilliseconds / Math.Max(1, used.Decodes), 2),
                ["whole_turn"] = Math.Round(elapsed * 1000 / Math.Max(1, used.Decodes), 2),
            },
            ["codec_seconds_per_second_of_speech"] = Math.Round(used.WorkTime.TotalSeconds / Math.Max(speech, 1e-9), 3),
            ["longest_step_gap_ms"] = Math.Round(engine.Scheduler.TakeLongestStepGap().TotalMilliseconds, 1),
            ["cache_pauses"] = used.Pauses,
            ["peak_working_set_mib"] = Math.Round(memory.PeakMiB, 1),
        };
    }

    // Three answers speak; once they do, a question of settings.JoiningQuestionSeconds joins. Its prompt is decoded in
    // slices between their steps: the longest gap between two of their steps, against the same span without it.
    private static Dictionary<string, object> Joining(MiniOmniEngine engine, BenchSettings settings)
    {
        var speaking = new MiniOmniRequest { Audio = Question(), MaxTokens = 400, EncoderMode = EncoderMode.Fast };
        using var stop = new CancellationTokenSource();
        var spoken = new CountdownEvent(3);
        var others = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            bool first = true;
            try
            {
                await foreach (var item in engine.GenerateAsync(speaking, stop.Token).ConfigureAwait(false))
                {
                    if (item is SpeechChunk && first)
                    {
                        first = false;
                        spoken.Signal();
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        })).ToList();
        spoken.Wait(TimeSpan.FromMinutes(2));
        engine.Scheduler.TakeLongestStepGap();
        Thread.Sleep(1500);
        double quiet = engine.Scheduler.TakeLongestStepGap().TotalMilliseconds;
        var joining = new MiniOmniRequest { Audio = Question(settings.JoiningQuestionSeconds), MaxTokens = 8, EncoderMode = EncoderMode.Fast };
        var clock = Stopwatch.StartNew();
        var joined = Completion(engine.GenerateAsync(joining)).GetAwaiter().GetResult();
        double withJoin = engine.Scheduler.TakeLongestStepGap().TotalMilliseconds;
        stop.Cancel();
        Task.WhenAll(others).GetAwaiter().GetResult();
        return new Dictionary<string, object>
        {
            ["question_seconds"] = settings.JoiningQuestionSeconds,
            ["prompt_positions"] = joined.PromptTokens,
            ["joining_answer_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2),
            ["longest_step_gap_of_the_others_ms"] = Math.Round(withJoin, 1),
            ["longest_step_gap_without_a_joining_prompt_ms"] = Math.Round(quiet, 1),
            ["one_chunk_of_speech_ms"] = Math.Round(4 * 2048 / 24.0, 1),
        };
    }

    /// <summary>Reads an answer to its end and returns its completion.</summary>
    public static async Task<AnswerCompleted> Completion(IAsyncEnumerable<MiniOmniEvent> events, CancellationToken cancellationToken = default)
    {
        AnswerCompleted? completed = null;
        await foreach (var item in events.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            completed = item as AnswerCompleted ?? completed;
        }

        return completed ?? throw new InvalidOperationException("The answer ended without its completion event.");
    }
}
