using System.CommandLine;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.ModelFiles.Conversion;

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
        var model = BenchOptions.Model();
        var questionSeconds = BenchOptions.QuestionSeconds();
        var turns = BenchOptions.Turns();
        var encoders = new Option<string>("--encoders") { Description = "Encoder modes to measure, comma-separated: fast, exact.", DefaultValueFactory = _ => "fast,exact" };
        var answerSteps = new Option<int>("--answer-steps") { Description = "Steps of each answer.", DefaultValueFactory = _ => 24 };
        var historyTurns = new Option<int>("--history-turns") { Description = "Turns of the history case, in process (0: none).", DefaultValueFactory = _ => 10 };
        var historyTokens = new Option<int>("--history-tokens") { Description = "The model's tokens of typed history the history case has added by its last turn (500: the realtime client's 2000-character budget in Qwen2's tokens).", DefaultValueFactory = _ => 500 };
        var historyCharacters = new Option<int>("--history-characters") { Description = "Characters of typed history instead of --history-tokens (0: sized in the model's tokens)." };
        var threads = new Option<int?>("--threads") { Description = "Engine threads (default: every core)." };
        var niceness = BenchOptions.Niceness();
        var noWarmUp = new Option<bool>("--no-warm-up") { Description = "Load without the warm-up, to measure what a cold engine's first turn pays." };
        var paths = new Option<string>("--paths") { Description = "Paths to measure, comma-separated: engine, realtime_client, server_socket.", DefaultValueFactory = _ => string.Join(',', ConversationBenchmark.Paths) };
        var transcribe = new Option<bool>("--transcribe") { Description = "Transcribe each spoken turn in the realtime paths, as the server does by default." };
        var noPacing = new Option<bool>("--no-pacing") { Description = "Send each question's audio at once instead of as it is spoken (nothing can then be done while the user speaks)." };
        var noPrefillAhead = new Option<bool>("--no-prefill-ahead") { Description = "Do not decode the next turn's preamble while the question is spoken." };
        var serverVad = new Option<bool>("--server-vad") { Description = "End each turn by the server's turn detection (its default), the question followed by silence, and time first audio from the end of the question's speech; the engine path is left out." };
        var output = BenchOptions.Json();
        var command = new Command("conversation", "Time each turn's first audio in a conversation, in process and through the server, cold against warm; prints JSON.")
        {
            model, questionSeconds, turns, encoders, answerSteps, historyTurns, historyTokens, historyCharacters, threads, niceness, noWarmUp, paths, transcribe, noPacing, noPrefillAhead, serverVad, output,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var directory = new ModelDirectory(parse.GetRequiredValue(model).FullName).EnsureComplete();
            var settings = new ConversationSettings
            {
                QuestionSeconds = BenchOptions.QuestionSecondsOf(parse, questionSeconds),
                Turns = Math.Max(1, parse.GetValue(turns)),
                Encoders = [.. (parse.GetValue(encoders) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(name => BenchOptions.EncoderOf(name, "--encoders"))],
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
                Paths = BenchOptions.PathsOf(parse.GetValue(paths), ConversationBenchmark.Paths),
            };
            var figures = await ConversationBenchmark.RunAsync(directory, settings, cancellationToken).ConfigureAwait(false);
            await BenchOptions.WriteAsync(figures, parse.GetValue(output), cancellationToken).ConfigureAwait(false);
        });
        return command;
    }
}
