using System.CommandLine;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>
/// <c>miniomni bench thinker</c>: a stand-in thinker writes each answer and Mini-Omni hears and speaks it, through the voice
/// middleware, the realtime client and the server's socket (see <see cref="ThinkerBenchmark"/>); and
/// <c>miniomni bench thinker-serve</c>, the stand-in alone, for a server's <c>MiniOmni:Thinker</c> to point at.
/// </summary>
internal static class BenchThinkerCommand
{
    public static Command Create()
    {
        var model = BenchOptions.Model();
        var questionSeconds = BenchOptions.QuestionSeconds();
        var turns = BenchOptions.Turns();
        var encoder = new Option<string>("--encoder") { Description = "How the question is encoded: fast or exact.", DefaultValueFactory = _ => "fast" };
        var transcriptTokens = new Option<int>("--transcript-tokens") { Description = "The most tokens of a question's transcript (random weights never end one; a real model ends a 2.4 s question after about a dozen).", DefaultValueFactory = _ => 12 };
        var answerSteps = new Option<int>("--answer-steps") { Description = "The most steps of one spoken answer (random weights never end their speech; 200 take the default answer's text and a little more).", DefaultValueFactory = _ => 200 };
        var (answer, rate, firstToken) = ThinkerOptions();
        var threads = new Option<int?>("--threads") { Description = "Engine threads (default: every core)." };
        var niceness = BenchOptions.Niceness();
        var paths = new Option<string>("--paths") { Description = "Paths to measure, comma-separated: voice_client, realtime_client, server_socket.", DefaultValueFactory = _ => string.Join(',', ThinkerBenchmark.Paths) };
        var output = BenchOptions.Json();
        var command = new Command("thinker", "Time a stand-in thinker's answers spoken by Mini-Omni: transcription, the thinker's first token, first audio, and the speech's pace and gaps; prints JSON.")
        {
            model, questionSeconds, turns, encoder, transcriptTokens, answerSteps, answer, rate, firstToken, threads, niceness, paths, output,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var directory = new ModelDirectory(parse.GetRequiredValue(model).FullName).EnsureComplete();
            var settings = new ThinkerBenchSettings
            {
                QuestionSeconds = BenchOptions.QuestionSecondsOf(parse, questionSeconds),
                Turns = Math.Max(1, parse.GetValue(turns)),
                Encoder = BenchOptions.EncoderOf(parse.GetValue(encoder), "--encoder"),
                TranscriptTokens = Positive(parse.GetValue(transcriptTokens), "--transcript-tokens"),
                AnswerSteps = Positive(parse.GetValue(answerSteps), "--answer-steps"),
                Answer = parse.GetValue(answer) ?? ThinkerBenchmark.DefaultAnswer,
                TokensPerSecond = Positive(parse.GetValue(rate), "--tokens-per-second"),
                FirstTokenDelay = TimeSpan.FromMilliseconds(Math.Max(0, parse.GetValue(firstToken))),
                Threads = parse.GetValue(threads),
                Niceness = parse.GetValue(niceness),
                Paths = BenchOptions.PathsOf(parse.GetValue(paths), ThinkerBenchmark.Paths),
            };
            var figures = await ThinkerBenchmark.RunAsync(directory, settings, cancellationToken).ConfigureAwait(false);
            await BenchOptions.WriteAsync(figures, parse.GetValue(output), cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary><c>miniomni bench thinker-serve</c>: the stand-in thinker on a loopback port until stopped (Ctrl+C).</summary>
    public static Command CreateServe()
    {
        var port = new Option<int>("--port") { Description = "The loopback port to listen on (0: any free one, printed).", DefaultValueFactory = _ => 5901 };
        var (answer, rate, firstToken) = ThinkerOptions();
        var command = new Command("thinker-serve", "Serve the stand-in thinker (an OpenAI-compatible chat completions endpoint on 127.0.0.1 streaming a set answer) until stopped, for MiniOmni:Thinker:Endpoint.")
        {
            port, answer, rate, firstToken,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            int chosen = parse.GetValue(port);
            if (chosen is < 0 or > 65535)
            {
                throw new ArgumentException($"--port is {chosen}; it must be 0 to 65535.");
            }

            await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions
            {
                Port = chosen,
                Answer = parse.GetValue(answer) ?? ThinkerBenchmark.DefaultAnswer,
                TokensPerSecond = Positive(parse.GetValue(rate), "--tokens-per-second"),
                FirstTokenDelay = TimeSpan.FromMilliseconds(Math.Max(0, parse.GetValue(firstToken))),
            });
            Console.WriteLine($"{thinker}; set MiniOmni:Thinker:Endpoint to {thinker.Endpoint} (any model name). Ctrl+C stops it.");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }

            Console.WriteLine($"Answered {thinker.Requests.Count} request(s).");
        });
        return command;
    }

    private static (Option<string> Answer, Option<double> Rate, Option<double> FirstToken) ThinkerOptions() => (
        new Option<string>("--answer") { Description = "The stand-in thinker's answer.", DefaultValueFactory = _ => ThinkerBenchmark.DefaultAnswer },
        new Option<double>("--tokens-per-second") { Description = "The stand-in thinker's pieces (4 characters) per second after the first.", DefaultValueFactory = _ => 30 },
        new Option<double>("--first-token-ms") { Description = "The stand-in thinker's delay before its first piece, in milliseconds.", DefaultValueFactory = _ => 200 });

    private static T Positive<T>(T value, string name)
        where T : System.Numerics.INumber<T> =>
        value > T.Zero ? value : throw new ArgumentException($"{name} is {value}; it must be positive.");
}
