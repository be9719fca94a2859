using System.CommandLine;
using System.Text.Json;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Commands;

/// <summary><c>miniomni run</c>: one question to a model directory, the answer streamed to the console and a WAV.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A MiniOmni.SK model directory, or a model name (`mini-omni`) fetched and converted on first use.", Required = true };
        var task = new Option<MiniOmniTask>("--task") { Description = "A1A2 (speech in, speech out), A1T2, Asr, T1A2 (text in, speech out), T1T2, or ReadAloud (the text spoken as written).", DefaultValueFactory = _ => MiniOmniTask.A1A2 };
        var input = new Option<FileInfo?>("--input") { Description = "The question as a WAV or MP3 file (speech-in tasks)." };
        var text = new Option<string?>("--text") { Description = "The question as text (text-in tasks), or the text to read aloud." };
        var outWav = new Option<FileInfo?>("--out-wav") { Description = "Write the spoken answer to this 24 kHz WAV." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most steps of the answer, about 12 a second of speech (0: the engine's default budget).", DefaultValueFactory = _ => 0 };
        maxTokens.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() < 0)
            {
                result.AddError("--max-tokens must be 0 (the engine's default budget) or a positive number of steps.");
            }
        });
        var temperature = new Option<float>("--temperature") { Description = "0 (default) is greedy, as released.", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Keep the K most likely tokens per head (0: no limit).", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling mass per head.", DefaultValueFactory = _ => 1f };
        var seed = new Option<int?>("--seed") { Description = "Seed of the draws." };
        var parallel = new Option<bool>("--batch-parallel") { Description = "Think in text beside speaking (A1A2), as the release's batch mode." };
        var fast = new Option<bool>("--fast-encoder") { Description = "Encode only the frames the audio covers (faster, not the release's features)." };
        var dump = new Option<FileInfo?>("--dump-tokens") { Description = "Write the 8 generated streams (7 audio layers unshifted, then text) as JSON." };
        var fullPrecision = new Option<bool>("--full-precision-cache") { Description = "Keep the KV cache in f32 (closest to the reference, twice the memory); the default is f16." };
        var command = new Command("run", "Ask a model one question; the answer's text streams to the console and its speech to a WAV.")
        {
            model, task, input, text, outWav, maxTokens, temperature, topK, topP, seed, parallel, fast, dump, fullPrecision,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var request = new MiniOmniRequest
            {
                Task = parse.GetValue(task),
                Audio = parse.GetValue(input) is { } file ? AudioDecoder.DecodeFile(file.FullName) : default,
                Text = parse.GetValue(text),
                MaxTokens = parse.GetValue(maxTokens),
                BatchParallel = parse.GetValue(parallel),
                EncoderMode = parse.GetValue(fast) ? EncoderMode.Fast : EncoderMode.Exact,
                Sampling = new SamplingOptions { Temperature = parse.GetValue(temperature), TopK = parse.GetValue(topK), TopP = parse.GetValue(topP), Seed = parse.GetValue(seed) },
            };
            var directory = await MiniOmni.SK.ModelFiles.Download.ModelStore.ResolveAsync(parse.GetRequiredValue(model), cancellationToken: cancellationToken).ConfigureAwait(false);
            // One answer has nothing to split between decodes, and measuring what decodes cost (which a server does while
            // idle after load) would share the cores with this answer's encode: its first speech would pay for it.
            using var engine = MiniOmniEngine.Load(directory.Path, new MiniOmniEngineOptions { FullPrecisionCache = parse.GetValue(fullPrecision), StepDecodePolicy = StepDecodePolicy.Together }, CommandRunner.Logging);
            var speech = new List<float>();
            AnswerCompleted? completed = null;
            await foreach (var item in engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
            {
                switch (item)
                {
                    case TextDelta delta:
                        Console.Write(delta.Text);
                        break;
                    case SpeechChunk chunk:
                        speech.AddRange(chunk.Samples);
                        break;
                    case AnswerCompleted done:
                        completed = done;
                        break;
                }
            }

            Console.WriteLine();
            if (parse.GetValue(outWav) is { } wav && speech.Count > 0)
            {
                Pcm16Wave.WriteFile(wav.FullName, speech.ToArray());
            }

            if (parse.GetValue(dump) is { } tokens && completed is not null)
            {
                File.WriteAllText(tokens.FullName, JsonSerializer.Serialize(completed.Tokens));
            }

            if (completed is not null)
            {
                AnsiConsole.MarkupLineInterpolated($"[grey]{completed.Steps} steps, {completed.SpeechSeconds:F2} s of speech, first speech after {completed.TimeToFirstSpeech?.TotalSeconds:F2} s, {completed.Elapsed.TotalSeconds:F2} s in all[/]");
            }
        });
        return command;
    }
}
