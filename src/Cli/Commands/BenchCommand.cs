using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Commands;

/// <summary><c>miniomni bench</c>: times each stage on a model directory and prints the figures as JSON.</summary>
internal static class BenchCommand
{
    private const double QuestionSeconds = 2.0;

    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A MiniOmni.SK model directory (e.g. from `miniomni synth --preset mini-omni`).", Required = true };
        var repeats = new Option<int>("--repeats") { Description = "Runs per measurement; the median is reported.", DefaultValueFactory = _ => 5 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for every stage (default: all cores)." };
        var codecThreads = new Option<int?>("--codec-threads") { Description = "CPU threads of the speech decoder in whole answers (default: as --threads)." };
        var answersOnly = new Option<bool>("--answers-only") { Description = "Only time whole answers through the engine." };
        var answerSteps = new Option<int>("--answer-steps") { Description = "Steps of each whole answer (64 is about 5 s of speech).", DefaultValueFactory = _ => 64 };
        var output = new Option<FileInfo?>("--json") { Description = "Also write the JSON to this file." };
        var command = new Command("bench", "Time the encoder, the codec and the backbone on a model directory; prints JSON.") { model, repeats, threads, codecThreads, answersOnly, answerSteps, output };
        command.SetAction(parse =>
        {
            var directory = new ModelDirectory(parse.GetRequiredValue(model).FullName).EnsureComplete();
            var figures = Run(directory, Math.Max(1, parse.GetValue(repeats)), parse.GetValue(threads), parse.GetValue(codecThreads), parse.GetValue(answersOnly), Math.Max(8, parse.GetValue(answerSteps)));
            string json = JsonSerializer.Serialize(figures, new JsonSerializerOptions { WriteIndented = true });
            Console.WriteLine(json);
            if (parse.GetValue(output) is { } file)
            {
                File.WriteAllText(file.FullName, json);
            }
        });
        return command;
    }

    private static Dictionary<string, object> Run(ModelDirectory directory, int repeats, int? threads, int? codecThreads, bool answersOnly, int answerSteps)
    {
        var figures = new Dictionary<string, object>
        {
            ["model"] = directory.Path,
            ["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            ["devices"] = GgmlDevices.DeviceNames(),
            ["repeats"] = repeats,
        };
        var options = new GgmlComputeOptions { Threads = threads };
        if (!answersOnly)
        {
            // On a thread that ends afterwards, as the engine runs its encoder: this thread's OpenMP team would
            // otherwise outlive the stage figures and slow the engine's (see DedicatedThread).
            DedicatedThread.RunAsync("bench stages", () =>
            {
                using (var file = GgufFile.Open(directory.AudioPath))
                {
                    var parameters = AudioModelParameters.Read(file);
                    BenchEncoder(file, parameters, options, repeats, figures);
                    BenchCodec(file, parameters, options, repeats, figures);
                }

                BenchBackbone(directory, repeats, threads, figures);
                return 0;
            }).GetAwaiter().GetResult();
        }

        figures["answer_steps"] = answerSteps;
        BenchAnswers(directory, new Engine.MiniOmniEngineOptions { Threads = threads, CodecThreads = codecThreads }, answerSteps, figures);
        figures["peak_working_set_mib"] = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0), 1);
        return figures;
    }

    private static void BenchEncoder(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, int repeats, Dictionary<string, object> figures)
    {
        using var encoder = Status("loading the encoder", () => new WhisperEncoder(file, parameters, options));
        var random = new Random(1);
        var samples = new float[(int)(QuestionSeconds * parameters.InputSampleRate)];
        for (int i = 0; i < samples.Length; i++)
        {
            samples[i] = (float)(0.1 * Math.Sin(i * 0.05) + 0.01 * (random.NextDouble() - 0.5));
        }

        int frames = Audio.WhisperLogMel.FeatureFrameCount(samples.Length);
        figures["mel_ms"] = Median(repeats, () => Audio.WhisperLogMel.Compute(samples));
        float[] mel = Audio.WhisperLogMel.Compute(samples);
        figures["encoder_exact_ms"] = Status("encoder, exact", () => Median(repeats, () => encoder.Encode(mel, frames, EncoderMode.Exact)));
        figures["encoder_fast_ms"] = Status("encoder, fast", () => Median(repeats, () => encoder.Encode(mel, frames, EncoderMode.Fast)));
        figures["question_seconds"] = QuestionSeconds;
    }

    private static void BenchCodec(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, int repeats, Dictionary<string, object> figures)
    {
        const int AnswerFrames = 64;
        using var decoder = Status("loading the codec", () => new SnacDecoder(file, parameters, options, AnswerFrames));
        var random = new Random(2);
        int[][] frames = [.. Enumerable.Range(0, AnswerFrames).Select(_ => Enumerable.Range(0, 7).Select(_ => random.Next(parameters.Snac.CodebookSize)).ToArray())];
        double speechSeconds = AnswerFrames * parameters.SamplesPerFrame / (double)parameters.Snac.SampleRate;
        // The fused CPU kernels run System.Numerics.Tensors code that .NET recompiles optimized only after some calls
        // and a pause: a long-running host pays that once, so let it happen before the first figure.
        Status("codec, warm-up", () =>
        {
            for (int i = 0; i < 10; i++)
            {
                decoder.Decode(SnacCodes.FromFrames(frames[..4]));
            }

            Thread.Sleep(500);
            return 0;
        });
        double Streamed(StreamingOptions streaming) => Median(repeats, () =>
        {
            var stream = new StreamingSnacDecoder(decoder, parameters.SamplesPerFrame, streaming);
            foreach (var frame in frames)
            {
                stream.Append(frame);
            }

            stream.Flush();
        });

        figures["snac_chunk_4_frames_ms"] = Status("codec, isolated 4-frame chunk", () => Median(repeats, () => decoder.Decode(SnacCodes.FromFrames(frames[..4]))));
        figures["snac_chunk_16_frames_ms"] = Status("codec, 16-frame chunk", () => Median(repeats, () => decoder.Decode(SnacCodes.FromFrames(frames[..16]))));
        foreach (var (name, streaming) in new[] { ("isolated_4", StreamingOptions.Isolated), ("context_4", new StreamingOptions()), ("engine_growing", StreamingOptions.Speech) })
        {
            figures[$"snac_streaming_{name}_seconds_per_second_of_speech"] = Status($"codec, streaming {name}", () => Math.Round(Streamed(streaming) / 1000 / speechSeconds, 3));
        }

        double whole = Status($"codec, {AnswerFrames} frames at once", () => Median(repeats, () => decoder.Decode(SnacCodes.FromFrames(frames))));
        figures["snac_whole_answer_seconds_per_second_of_speech"] = Math.Round(whole / 1000 / speechSeconds, 3);
    }

    private static void BenchBackbone(ModelDirectory directory, int repeats, int? threads, Dictionary<string, object> figures)
    {
        using var file = GgufFile.Open(directory.VocabularyPath);
        MiniOmniVocabulary vocabulary;
        using (var audio = GgufFile.Open(directory.AudioPath))
        {
            vocabulary = MiniOmniVocabulary.From(AudioModelParameters.Read(audio));
        }

        var backboneOptions = new BackboneOptions { ContextSize = 2048, MaxSequences = 4, Threads = threads };
        var heads = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = threads }, (int)backboneOptions.MaxSequences);
        using var backbone = Status("loading the backbone", () => Backbone.Load(directory.BackbonePath, heads, backboneOptions));
        int width = backbone.EmbeddingLength;
        var random = new Random(3);
        float[] Embedding() => [.. Enumerable.Range(0, width).Select(_ => (float)(random.NextDouble() - 0.5) * 0.02f)];
        int prompt = 3 + Audio.WhisperLogMel.FeatureFrameCount((int)(QuestionSeconds * 16000)) + 1;

        int position = 0;
        var batch = backbone.CreateBatch();
        figures["prefill_positions"] = prompt;
        figures["prefill_ms"] = Status("backbone, prefill", () => Median(repeats, () =>
        {
            backbone.RemoveSequence((LLamaSeqId)0);
            batch.Clear();
            for (int p = 0; p < prompt; p++)
            {
                batch.Add(Embedding(), (LLamaPos)p, (LLamaSeqId)0, p == prompt - 1 ? OutputHeadSet.TextAndAudio : OutputHeadSet.None);
            }

            backbone.Decode(batch);
        }));
        position = prompt;
        foreach (int sequences in new[] { 1, 2 })
        {
            // The second sequence continues from a copy of the first, as a batch-parallel answer does.
            backbone.RemoveSequence((LLamaSeqId)1);
            backbone.CopySequence((LLamaSeqId)0, (LLamaSeqId)1, 0, position);
            var step = Enumerable.Range(0, sequences).Select(_ => Embedding()).ToArray();
            void Step(Action<BackboneBatch> decode, OutputHeadSet heads)
            {
                batch.Clear();
                for (int s = 0; s < sequences; s++)
                {
                    batch.Add(step[s], (LLamaPos)position, (LLamaSeqId)s, heads);
                }

                decode(batch);
                position++;
            }

            // llama.cpp alone (its head is one row), then with every head row for every sequence: what llama.cpp computes with the head inside.
            figures[$"bare_llama_decode_{sequences}_sequence_ms"] = Status($"backbone, step of {sequences}", () => Median(repeats * 4, () => Step(backbone.DecodeHiddenStates, OutputHeadSet.TextAndAudio)));
            figures[$"decode_with_whole_head_{sequences}_sequence_ms"] = Status($"backbone and whole head, step of {sequences}", () => Median(repeats * 4, () => Step(backbone.Decode, OutputHeadSet.TextAndAudio)));
            if (sequences == 1)
            {
                // The steps the engine decodes: a speaking row before and after its text ends, a text answer.
                figures["decode_step_speaking_ms"] = figures["decode_with_whole_head_1_sequence_ms"];
                figures["decode_step_speaking_after_text_ms"] = Status("backbone, speaking step after the text", () => Median(repeats * 4, () => Step(backbone.Decode, OutputHeadSet.Audio)));
                figures["decode_step_text_answer_ms"] = Status("backbone, text answer step", () => Median(repeats * 4, () => Step(backbone.Decode, OutputHeadSet.Text)));
            }
            else
            {
                // Batch-parallel: audio heads for the speaking row, the text head for the thinking row. After EOT the
                // thinking row is no longer decoded, so the step is the speaking one after the text.
                figures["decode_step_batch_parallel_ms"] = Status("backbone, batch-parallel step", () => Median(repeats * 4, () =>
                {
                    batch.Clear();
                    batch.Add(step[0], (LLamaPos)position, (LLamaSeqId)0, OutputHeadSet.Audio);
                    batch.Add(step[1], (LLamaPos)position, (LLamaSeqId)1, OutputHeadSet.Text);
                    backbone.Decode(batch);
                    position++;
                }));
            }
        }

        // The head alone, for the sets of rows steps ask for: speaking (text and audio), speaking after the text ended
        // (audio), text answers (text), a batch-parallel pair (audio + text), and the whole head on two rows for comparison.
        var hidden = Enumerable.Range(0, 2).SelectMany(_ => Embedding()).ToArray();
        foreach (var (name, sets) in new (string, OutputHeadSet[])[]
        {
            ("text_and_audio", [OutputHeadSet.TextAndAudio]),
            ("audio", [OutputHeadSet.Audio]),
            ("text", [OutputHeadSet.Text]),
            ("batch_parallel_audio_plus_text", [OutputHeadSet.Audio, OutputHeadSet.Text]),
            ("whole_head_2_rows", [OutputHeadSet.TextAndAudio, OutputHeadSet.TextAndAudio]),
        })
        {
            figures[$"heads_{name}_ms"] = Status($"heads, {name}", () => Median(repeats * 4, () => heads.Compute(hidden.AsSpan(0, sets.Length * width), sets)));
        }
    }

    // Whole answers through the engine: a 1.2 s question, fast encoder, answerSteps steps (64: about 5 s of speech). The engine's
    // step (embedding mix, decode, sampling, rules) comes from its scheduler's counters, beside the bare decode above.
    private static void BenchAnswers(ModelDirectory directory, Engine.MiniOmniEngineOptions options, int answerSteps, Dictionary<string, object> figures)
    {
        using var engine = Status("loading the engine", () => Engine.MiniOmniEngine.Load(directory.Path, options));
        var random = new Random(4);
        float[] question = [.. Enumerable.Range(0, 19200).Select(i => (float)(0.1 * Math.Sin(i * 0.03) + 0.01 * (random.NextDouble() - 0.5)))];
        foreach (bool parallel in new[] { false, true })
        {
            var request = new Engine.MiniOmniRequest { Audio = question, MaxTokens = answerSteps, BatchParallel = parallel, EncoderMode = EncoderMode.Fast };
            string name = parallel ? "batch_parallel" : "single";
            Engine.AnswerCompleted? completed = null;
            var before = engine.DecodeStatistics;
            Status($"answer, {name}", () =>
            {
                foreach (var round in Enumerable.Range(0, 2)) // the first round warms up
                {
                    before = engine.DecodeStatistics;
                    completed = engine.GenerateAsync(request).ToBlockingEnumerable().OfType<Engine.AnswerCompleted>().Single();
                }

                return 0;
            });
            var steps = engine.DecodeStatistics.Since(before);
            double seconds = completed!.Elapsed.TotalSeconds;
            figures[$"answer_{name}_step_ms"] = Math.Round(steps.StepTime.TotalMilliseconds / Math.Max(1, steps.StepDecodes), 1);
            figures[$"answer_{name}_first_speech_s"] = Math.Round(completed.TimeToFirstSpeech?.TotalSeconds ?? double.NaN, 3);
            figures[$"answer_{name}_seconds"] = Math.Round(seconds, 2);
            figures[$"answer_{name}_speech_seconds"] = Math.Round(completed.SpeechSeconds, 2);
            figures[$"answer_{name}_real_time_factor"] = Math.Round(seconds / Math.Max(completed.SpeechSeconds, 1e-9), 3);
        }

        // Continuous batching: several answers at once share each decode.
        const int Concurrent = 4;
        var together = new Engine.MiniOmniRequest { Audio = question, MaxTokens = answerSteps, EncoderMode = EncoderMode.Fast };
        var start = engine.DecodeStatistics;
        var clock = Stopwatch.StartNew();
        // Read asynchronously, as a server would: blocked readers would hold thread-pool threads the answers' codec work needs.
        var answers = Status($"{Concurrent} answers at once", () => Task.WhenAll(Enumerable.Range(0, Concurrent).Select(_ => Completion(engine.GenerateAsync(together)))).GetAwaiter().GetResult());
        double elapsed = clock.Elapsed.TotalSeconds;
        var shared = engine.DecodeStatistics.Since(start);
        figures[$"concurrent_{Concurrent}_answers_seconds"] = Math.Round(elapsed, 2);
        figures[$"concurrent_{Concurrent}_answers_speech_seconds_per_second"] = Math.Round(answers.Sum(a => a.SpeechSeconds) / elapsed, 2);
        figures[$"concurrent_{Concurrent}_answers_first_speech_s_max"] = Math.Round(answers.Max(a => a.TimeToFirstSpeech?.TotalSeconds ?? double.NaN), 3);
        figures[$"concurrent_{Concurrent}_answers_decodes"] = shared.Decodes;
        figures[$"concurrent_{Concurrent}_answers_step_ms"] = Math.Round(shared.StepTime.TotalMilliseconds / Math.Max(1, shared.StepDecodes), 1);
    }

    private static async Task<Engine.AnswerCompleted> Completion(IAsyncEnumerable<Engine.MiniOmniEvent> events)
    {
        Engine.AnswerCompleted? completed = null;
        await foreach (var item in events.ConfigureAwait(false))
        {
            completed = item as Engine.AnswerCompleted ?? completed;
        }

        return completed ?? throw new InvalidOperationException("The answer ended without its completion event.");
    }

    private static double Median(int repeats, Action work)
    {
        work(); // warm-up: first-call allocation and JIT are not what a long-running host pays
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            work();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return Math.Round(times[times.Count / 2], 1);
    }

    private static T Status<T>(string what, Func<T> work)
    {
        T result = default!;
        AnsiConsole.Status().Start($"bench: {what}", _ => result = work());
        return result;
    }
}
