using System.CommandLine;
using System.Text.Json;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Server.Hosting;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>
/// <c>miniomni bench conversation</c>: the same spoken question turn after turn, through the engine, the realtime client and
/// the server's socket, each on an engine loaded afresh; each turn's first audio, cold against warm, and a growing history
/// (see <see cref="ConversationBenchmark"/>). Prints JSON; the goals' ratios are in it.
/// </summary>
internal static class BenchConversationCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "A MiniOmni.SK model directory (e.g. from `miniomni synth --preset mini-omni --type q8_0`).", Required = true };
        var questionSeconds = new Option<double>("--question-seconds") { Description = "Length of the question every turn asks, in seconds (up to 30).", DefaultValueFactory = _ => 2.4 };
        var turns = new Option<int>("--turns") { Description = "Turns of each conversation; turn 1 is the first request after the engine is ready.", DefaultValueFactory = _ => 3 };
        var encoders = new Option<string>("--encoders") { Description = "Encoder modes to measure, comma-separated: fast, exact.", DefaultValueFactory = _ => "fast,exact" };
        var answerSteps = new Option<int>("--answer-steps") { Description = "Steps of each answer.", DefaultValueFactory = _ => 24 };
        var historyTurns = new Option<int>("--history-turns") { Description = "Turns of the history case, in process (0: none).", DefaultValueFactory = _ => 10 };
        var historyTokens = new Option<int>("--history-tokens") { Description = "The model's tokens of typed history the history case has added by its last turn (500: the realtime client's 2000-character budget in Qwen2's tokens).", DefaultValueFactory = _ => 500 };
        var historyCharacters = new Option<int>("--history-characters") { Description = "Characters of typed history instead of --history-tokens (0: sized in the model's tokens)." };
        var threads = new Option<int?>("--threads") { Description = "Engine threads (default: every core)." };
        var niceness = new Option<int>("--niceness") { Description = "Nice value of the engine's threads, as the server's MiniOmni:EngineNiceness (0: unchanged).", DefaultValueFactory = _ => new MiniOmniServerOptions().EngineNiceness };
        var noWarmUp = new Option<bool>("--no-warm-up") { Description = "Load without the warm-up, to measure what a cold engine's first turn pays." };
        var paths = new Option<string>("--paths") { Description = "Paths to measure, comma-separated: engine, realtime_client, server_socket.", DefaultValueFactory = _ => string.Join(',', ConversationBenchmark.Paths) };
        var transcribe = new Option<bool>("--transcribe") { Description = "Transcribe each spoken turn in the realtime paths, as the server does by default." };
        var noPacing = new Option<bool>("--no-pacing") { Description = "Send each question's audio at once instead of as it is spoken (nothing can then be done while the user speaks)." };
        var noPrefillAhead = new Option<bool>("--no-prefill-ahead") { Description = "Do not decode the next turn's preamble while the question is spoken." };
        var serverVad = new Option<bool>("--server-vad") { Description = "End each turn by the server's turn detection (its default), the question followed by silence, and time first audio from the end of the question's speech; the engine path is left out." };
        var output = new Option<FileInfo?>("--json") { Description = "Also write the JSON to this file." };
        var command = new Command("conversation", "Time each turn's first audio in a conversation, in process and through the server, cold against warm; prints JSON.")
        {
            model, questionSeconds, turns, encoders, answerSteps, historyTurns, historyTokens, historyCharacters, threads, niceness, noWarmUp, paths, transcribe, noPacing, noPrefillAhead, serverVad, output,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var directory = new ModelDirectory(parse.GetRequiredValue(model).FullName).EnsureComplete();
            double seconds = parse.GetValue(questionSeconds);
            if (seconds is < 0.2 or > 30)
            {
                throw new ArgumentException($"--question-seconds is {seconds}; a question lasts 0.2 to 30 s.");
            }

            var settings = new ConversationSettings
            {
                QuestionSeconds = seconds,
                Turns = Math.Max(1, parse.GetValue(turns)),
                Encoders = [.. (parse.GetValue(encoders) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseMode)],
                AnswerSteps = Math.Max(16, parse.GetValue(answerSteps)),
                HistoryTurns = Math.Max(0, parse.GetValue(historyTurns)),
                HistoryTokens = Math.Max(0, parse.GetValue(historyTokens)),
                HistoryCharacters = Math.Max(0, parse.GetValue(historyCharacters)),
                Threads = parse.GetValue(threads),
                Niceness = parse.GetValue(niceness),
                WarmUp = !parse.GetValue(noWarmUp),
                Transcribe = parse.GetValue(transcribe),
                PaceAudio = !parse.GetValue(noPacing),
                PrefillAhead = !parse.GetValue(noPrefillAhead),
                ServerTurnDetection = parse.GetValue(serverVad),
                Paths = [.. (parse.GetValue(paths) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(p => ConversationBenchmark.Paths.Contains(p) ? p : throw new ArgumentException($"--paths takes {string.Join(", ", ConversationBenchmark.Paths)}; got '{p}'."))],
            };
            var figures = await ConversationBenchmark.RunAsync(directory, settings, cancellationToken).ConfigureAwait(false);
            string json = JsonSerializer.Serialize(figures, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });
            Console.WriteLine(json);
            if (parse.GetValue(output) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, json, cancellationToken).ConfigureAwait(false);
            }
        });
        return command;
    }

    private static EncoderMode ParseMode(string name) => name.ToLowerInvariant() switch
    {
        "fast" => EncoderMode.Fast,
        "exact" => EncoderMode.Exact,
        _ => throw new ArgumentException($"--encoders takes fast and exact; got '{name}'."),
    };
}
