// MEAI001, OPENAI002: the realtime surfaces of Microsoft.Extensions.AI and of the OpenAI SDK are marked experimental;
// measuring them is what this benchmark is for.
#pragma warning disable MEAI001, OPENAI002

using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Cli.Commands;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Server.Hosting;
using MiniOmni.SK.Speech;
using OpenAI.Realtime;
using Spectre.Console;
using MeaiAudioFormat = Microsoft.Extensions.AI.RealtimeAudioFormat;
using MeaiSessionOptions = Microsoft.Extensions.AI.RealtimeSessionOptions;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>What one <c>miniomni bench conversation</c> run measures.</summary>
internal sealed record ConversationSettings
{
    /// <summary>Length of the question every turn asks, in seconds.</summary>
    public double QuestionSeconds { get; init; } = 2.4;

    /// <summary>Turns of each conversation; turn 1 is the first request after the engine said it was ready.</summary>
    public int Turns { get; init; } = 3;

    /// <summary>The encoder modes measured, one conversation per mode and path.</summary>
    public IReadOnlyList<EncoderMode> Encoders { get; init; } = [EncoderMode.Fast, EncoderMode.Exact];

    /// <summary>Steps of each answer (the issue measured 24).</summary>
    public int AnswerSteps { get; init; } = 24;

    /// <summary>Turns of the history case (0: none); its history reaches <see cref="HistoryTokens"/> by the last turn.</summary>
    public int HistoryTurns { get; init; } = 10;

    /// <summary>
    /// The model's tokens of history the history case has added by its last turn: 500 is what the realtime client's budget
    /// of 2000 characters takes in Qwen2's tokens (about 4 characters each). Counted in the model's own tokens, so that a
    /// model whose tokenizer spends more (the synth models' spend about one a character) is measured with the same number
    /// of positions rather than overflowing its context.
    /// </summary>
    public int HistoryTokens { get; init; } = 500;

    /// <summary>Characters of history instead of <see cref="HistoryTokens"/> (0: sized in tokens).</summary>
    public int HistoryCharacters { get; init; }

    /// <summary>Engine threads (null: every core).</summary>
    public int? Threads { get; init; }

    /// <summary>Nice value of the engine's threads, as the server's MiniOmni:EngineNiceness.</summary>
    public int Niceness { get; init; }

    /// <summary>Whether the engine warms up before it says it is ready (false measures what a cold engine's first turn pays).</summary>
    public bool WarmUp { get; init; } = true;

    /// <summary>The paths measured (of <see cref="ConversationBenchmark.Paths"/>).</summary>
    public IReadOnlyList<string> Paths { get; init; } = ConversationBenchmark.Paths;

    /// <summary>
    /// Whether each question's audio is sent as it is spoken (100 ms every 100 ms), as a live client sends it; the engine
    /// path waits the question's length before each turn after the first. The time a turn takes is still counted from its
    /// commit: what happens while the user speaks (the history decoded ahead) is off the critical path, as it is live.
    /// </summary>
    public bool PaceAudio { get; init; } = true;

    /// <summary>
    /// Whether each turn is ended by the server's voice activity detection (the server's default: 500 ms of silence), its
    /// question followed by silence as a microphone sends it, rather than committed by the client. A turn's time then
    /// runs from the end of its speech, what the speaker waits; the engine path, which has no turn detection, is left out.
    /// </summary>
    public bool ServerTurnDetection { get; init; }

    /// <summary>Whether the next turn's preamble is decoded ahead, while the question is spoken (the realtime client's PrefillHistoryAhead).</summary>
    public bool PrefillAhead { get; init; } = true;

    /// <summary>Whether the realtime paths transcribe each spoken turn (the server's default), which today runs before the next answer.</summary>
    public bool Transcribe { get; init; }
}

/// <summary>
/// The same question turn after turn, through the engine, through <see cref="IRealtimeClient"/> and through the server's
/// /v1/realtime socket (the official OpenAI SDK), each on an engine loaded afresh as the server loads it, so that turn 1 is
/// the first request after ready: each turn's time from the response request to its first audio, cold against warm, the
/// paths against each other, and a conversation whose history grows to 2000 characters.
/// </summary>
internal static class ConversationBenchmark
{
    private const int RealtimeRate = 24000;

    /// <summary>The paths a turn is measured through.</summary>
    public static readonly string[] Paths = ["engine", "realtime_client", "server_socket"];

    public static async Task<Dictionary<string, object>> RunAsync(ModelDirectory directory, ConversationSettings settings, CancellationToken cancellationToken)
    {
        float[] question = AnswerBenchmarks.Question(settings.QuestionSeconds);
        byte[] pcm = Pcm16Wave.ToPcm16Bytes(new StreamingResampler(16000, RealtimeRate).Resample(question));
        var figures = new Dictionary<string, object>
        {
            ["model"] = directory.Path,
            ["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            ["load_average"] = LoadAverage(),
            ["question_seconds"] = settings.QuestionSeconds,
            ["answer_steps"] = settings.AnswerSteps,
            ["turns"] = settings.Turns,
            ["warm_up"] = settings.WarmUp,
            ["transcribe"] = settings.Transcribe,
            ["pace_audio"] = settings.PaceAudio,
            ["prefill_ahead"] = settings.PrefillAhead,
            ["turn_detection"] = settings.ServerTurnDetection ? "server_vad (first audio counted from the end of the question's speech)" : "none (first audio counted from response.create)",
            ["engine_niceness"] = settings.Niceness,
            ["history_turns"] = settings.HistoryTurns,
            ["history_tokens"] = settings.HistoryCharacters > 0 ? "none: sized by --history-characters" : (object)settings.HistoryTokens,
        };
        foreach (var mode in settings.Encoders)
        {
            string name = mode.ToString().ToLowerInvariant();
            var turns = new Dictionary<string, double[]>();
            foreach (string path in settings.Paths.Where(p => !settings.ServerTurnDetection || p != "engine"))
            {
                var (result, load) = await WithEngineAsync(directory, settings, mode, (engine, server) => Conversation(path, engine, server, mode, settings, question, pcm, settings.Turns, 0, cancellationToken), cancellationToken).ConfigureAwait(false);
                turns[path] = result.Times;
                figures[$"{name}_{path}_load_s"] = Math.Round(load, 2);
                figures[$"{name}_{path}_first_audio_s"] = result.Times.Select(t => Math.Round(t, 3)).ToArray();
                figures[$"{name}_{path}_first_audio_stages_s"] = result.Stages;
            }

            // The goals: no cold start (turn 1 / turn 2), no growth (turn 3 / turn 2), the socket as fast as in process.
            foreach (string path in turns.Keys)
            {
                double[] t = turns[path];
                figures[$"{name}_{path}_turn1_over_turn2"] = t.Length > 1 ? Math.Round(t[0] / t[1], 3) : double.NaN;
                figures[$"{name}_{path}_turn3_over_turn2"] = t.Length > 2 ? Math.Round(t[2] / t[1], 3) : double.NaN;
            }

            double Warm(string path) => turns.TryGetValue(path, out var t) ? t.Skip(1).DefaultIfEmpty(double.NaN).Average() : double.NaN;
            figures[$"{name}_socket_over_engine_warm"] = Math.Round(Warm("server_socket") / Warm("engine"), 3);
            figures[$"{name}_socket_over_realtime_client_warm"] = Math.Round(Warm("server_socket") / Warm("realtime_client"), 3);
            figures[$"{name}_realtime_client_over_engine_warm"] = Math.Round(Warm("realtime_client") / Warm("engine"), 3);

            if (settings.HistoryTurns > 1)
            {
                foreach (string path in settings.Paths.Where(p => p != "server_socket" && (!settings.ServerTurnDetection || p != "engine")))
                {
                    var (history, _) = await WithEngineAsync(directory, settings, mode, (engine, server) =>
                    {
                        int characters = HistoryCharacters(engine, settings);
                        figures[$"{name}_history_{path}_characters"] = characters;
                        return Conversation(path, engine, server, mode, settings, question, pcm, settings.HistoryTurns, characters, cancellationToken);
                    }, cancellationToken).ConfigureAwait(false);
                    figures[$"{name}_history_{path}_first_audio_s"] = history.Times.Select(t => Math.Round(t, 3)).ToArray();
                    figures[$"{name}_history_{path}_first_audio_stages_s"] = history.Stages;
                    // Turn 1 is the cold one; turn 2 has little history yet: the last turn against it.
                    figures[$"{name}_history_{path}_last_over_turn2"] = Math.Round(history.Times[^1] / history.Times[1], 3);
                }
            }
        }

        figures["load_average_after"] = LoadAverage();
        figures["peak_working_set_mib"] = Math.Round(BenchTools.PeakResidentMiB(), 1);
        return figures;
    }

    // Loads an engine as the server does (warmed up unless told not to), starts a loopback server over it, and runs work.
    private static Task<(T Result, double LoadSeconds)> WithEngineAsync<T>(ModelDirectory directory, ConversationSettings settings, EncoderMode mode, Func<MiniOmniEngine, Uri, Task<T>> work, CancellationToken cancellationToken) =>
        WithEngineAsync(directory, settings, mode, [], engine => engine, (engine, server) => work((MiniOmniEngine)engine, server), cancellationToken);

    /// <summary>
    /// Loads an engine as the server does (warmed up unless told not to), starts a loopback server over it (with
    /// <paramref name="serverArguments"/> added to its settings), and runs <paramref name="work"/> on the engine as
    /// <paramref name="wrap"/> makes it, which the server is given too.
    /// </summary>
    internal static async Task<(T Result, double LoadSeconds)> WithEngineAsync<T>(
        ModelDirectory directory, ConversationSettings settings, EncoderMode mode, IReadOnlyList<string> serverArguments, Func<IMiniOmniEngine, IMiniOmniEngine> wrap, Func<IMiniOmniEngine, Uri, Task<T>> work, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        using var engine = await Task.Run(() => MiniOmniEngine.Load(directory.Path, new MiniOmniEngineOptions { Threads = settings.Threads, ComputeNiceness = settings.Niceness }, CommandRunner.Logging), cancellationToken).ConfigureAwait(false);
        if (settings.WarmUp)
        {
            await engine.WarmUpAsync(cancellationToken).ConfigureAwait(false);
        }

        double load = clock.Elapsed.TotalSeconds;
        var used = wrap(engine);
        await using var server = MiniOmniServer.Build(
            ["--model", directory.Path, "--urls", "http://127.0.0.1:0", "--MiniOmni:TranscribeRealtimeSpeech", settings.Transcribe ? "true" : "false", "--MiniOmni:EncoderMode", mode.ToString(),
             "--MiniOmni:Limits:MaxAnswerTokens", settings.AnswerSteps.ToString(CultureInfo.InvariantCulture), "--MiniOmni:PrefillRealtimeHistoryAhead", settings.PrefillAhead ? "true" : "false", "--Logging:LogLevel:Default", "Warning", .. serverArguments],
            services => services.AddSingleton<IModelLoader>(new BenchServeCommand.LoadedEngine(used)));
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = new Uri(server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        while (!server.Services.GetRequiredService<ModelHost>().IsReady)
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }

        var result = await work(used, address).ConfigureAwait(false);
        await server.StopAsync(cancellationToken).ConfigureAwait(false);
        return (result, load);
    }

    // One conversation of `turns` turns through `path`; each turn's seconds from the response request to its first audio.
    // With historyCharacters > 0, a typed exchange is added before each turn after the first, so that the history has
    // grown by historyCharacters by the last turn (the engine path gets the same amount as a preamble).
    private static async Task<ConversationTimes> Conversation(string path, MiniOmniEngine engine, Uri server, EncoderMode mode, ConversationSettings settings, float[] question, byte[] pcm, int turns, int historyCharacters, CancellationToken cancellationToken)
    {
        int perTurn = turns > 1 ? historyCharacters / (turns - 1) / 2 : 0;
        var times = new double[turns];
        var stages = new Dictionary<string, double>[turns];
        AnswerTimeline? last = null;
        // Each turn's first audio, stage by stage: the path's own time before the engine has the request, the engine's
        // stages (AnswerTimeline), and the path's time from the engine's first speech to the caller's first audio.
        async Task<double> Measure(int turn, Func<Task<(double First, long Started)>> run)
        {
            var (first, started) = await Status($"{mode}, {path}, turn {turn + 1}", async () => await run().ConfigureAwait(false)).ConfigureAwait(false);
            var timeline = engine.LastSpokenTimeline;
            if (timeline is not null && timeline != last)
            {
                last = timeline;
                double before = Stopwatch.GetElapsedTime(started, timeline.StartTimestamp).TotalSeconds;
                var turnStages = new Dictionary<string, double> { ["before_engine"] = Math.Round(before, 4) };
                foreach (var (stage, seconds) in timeline.Stages())
                {
                    turnStages[stage] = Math.Round(seconds, 4);
                }

                turnStages["after_engine"] = Math.Round(first - before - timeline.FirstSpeech, 4);
                turnStages["prompt_positions_decoded"] = timeline.PromptPositionsDecoded;
                turnStages["prompt_positions_reused"] = timeline.PromptPositionsReused;
                turnStages["prompt_decodes"] = timeline.PromptDecodes;
                turnStages["steps_before_first_chunk"] = timeline.StepsToFirstChunk;
                turnStages["steps_at_codec_start"] = timeline.StepsAtCodecStart;
                turnStages["first_chunk_frames"] = timeline.FirstChunkFrames;
                turnStages["encoded_ahead"] = timeline.EncodedAhead ? 1 : 0;
                stages[turn] = turnStages;
            }

            return first;
        }

        switch (path)
        {
            case "engine":
                for (int turn = 0; turn < turns; turn++)
                {
                    string? preamble = historyCharacters > 0 && turn > 0 ? Filler(2 * perTurn * turn) : null;
                    Task? ahead = null;
                    if (turn > 0 && settings.PaceAudio)
                    {
                        // The caller knows the next preamble once the last answer is in: decoded while the question is spoken.
                        ahead = settings.PrefillAhead && preamble is not null ? engine.PrefillPreambleAsync(new MiniOmniRequest { Preamble = preamble }, cancellationToken) : null;
                        await Task.Delay(TimeSpan.FromSeconds(settings.QuestionSeconds), cancellationToken).ConfigureAwait(false);
                    }

                    times[turn] = await Measure(turn, () => EngineTurn(engine, question, mode, settings.AnswerSteps, preamble, cancellationToken)).ConfigureAwait(false);
                    try
                    {
                        await (ahead ?? Task.CompletedTask).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                    {
                        // It gave its cells up to the answer: the answer decoded the preamble itself, as without it.
                    }
                }

                break;
            case "realtime_client":
                // In the history case the session's budget is the history's size, as a real session's 2000 characters are in
                // Qwen2's tokens: its own turns count against it too, and once full it is trimmed as a live one is.
                var client = engine.AsIRealtimeClient(new MiniOmniRealtimeClientOptions
                {
                    TranscribeUserSpeech = settings.Transcribe,
                    EncoderMode = mode,
                    PrefillHistoryAhead = settings.PrefillAhead,
                    HistoryCharacterBudget = historyCharacters > 0 ? historyCharacters : new MiniOmniRealtimeClientOptions().HistoryCharacterBudget,
                }, CommandRunner.Logging);
                await using (var session = await client.CreateSessionAsync(new MeaiSessionOptions
                {
                    InputAudioFormat = new MeaiAudioFormat("audio/pcm", RealtimeRate),
                    // Null: the session's default, server turn detection after 500 ms of silence.
                    VoiceActivityDetection = settings.ServerTurnDetection ? null : new VoiceActivityDetectionOptions { Enabled = false },
                    MaxOutputTokens = settings.AnswerSteps,
                }, cancellationToken).ConfigureAwait(false))
                {
                    for (int turn = 0; turn < turns; turn++)
                    {
                        if (perTurn > 0 && turn > 0)
                        {
                            await session.SendAsync(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent(Filler(perTurn))], $"u{turn}", ChatRole.User)), cancellationToken).ConfigureAwait(false);
                            await session.SendAsync(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent(Filler(perTurn))], $"a{turn}", ChatRole.Assistant)), cancellationToken).ConfigureAwait(false);
                        }

                        times[turn] = await Measure(turn, () => settings.ServerTurnDetection ? ClientDetectedTurn(session, pcm, cancellationToken) : ClientTurn(session, pcm, settings.PaceAudio, cancellationToken)).ConfigureAwait(false);
                    }
                }

                break;
            default:
                var sdk = new RealtimeClient(new ApiKeyCredential("loopback"), new OpenAI.Realtime.RealtimeClientOptions { Endpoint = new Uri(server, "/v1") });
                using (var session = await sdk.StartConversationSessionAsync("mini-omni", cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    var input = new RealtimeConversationSessionInputAudioOptions();
                    if (settings.ServerTurnDetection)
                    {
                        input.TurnDetection = new RealtimeServerVadTurnDetection { SilenceDuration = TimeSpan.FromMilliseconds(500) };
                    }
                    else
                    {
                        input.DisableTurnDetection();
                    }

                    await session.ConfigureConversationSessionAsync(new RealtimeConversationSessionOptions
                    {
                        AudioOptions = new RealtimeConversationSessionAudioOptions { InputAudioOptions = input },
                        MaxOutputTokenCount = settings.AnswerSteps,
                    }, cancellationToken).ConfigureAwait(false);
                    for (int turn = 0; turn < turns; turn++)
                    {
                        times[turn] = await Measure(turn, () => settings.ServerTurnDetection ? SocketDetectedTurn(session, pcm, cancellationToken) : SocketTurn(session, pcm, settings.PaceAudio, cancellationToken)).ConfigureAwait(false);
                    }
                }

                break;
        }

        return new ConversationTimes(times, stages);
    }

    /// <summary>Each turn's seconds to first audio, and where they went (null for a turn whose answer did not speak).</summary>
    private sealed record ConversationTimes(double[] Times, Dictionary<string, double>?[] Stages);

    private static async Task<(double First, long Started)> EngineTurn(MiniOmniEngine engine, float[] question, EncoderMode mode, int steps, string? preamble, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        double first = double.NaN;
        await foreach (var item in engine.GenerateAsync(new MiniOmniRequest { Audio = question, MaxTokens = steps, EncoderMode = mode, Preamble = preamble }, cancellationToken).ConfigureAwait(false))
        {
            if (item is SpeechChunk && double.IsNaN(first))
            {
                first = clock.Elapsed.TotalSeconds;
            }
        }

        return (first, started);
    }

    private static async Task<(double First, long Started)> ClientTurn(IRealtimeClientSession session, byte[] pcm, bool paced, CancellationToken cancellationToken)
    {
        await SpeakAsync(pcm, paced, chunk => session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(chunk, "audio/pcm")), cancellationToken), cancellationToken).ConfigureAwait(false);

        await session.SendAsync(new InputAudioBufferCommitRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        long started = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        await session.SendAsync(new CreateResponseRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        double first = double.NaN;
        await foreach (var message in session.GetStreamingResponseAsync(cancellationToken).ConfigureAwait(false))
        {
            if (message.Type == RealtimeServerMessageType.OutputAudioDelta && double.IsNaN(first))
            {
                first = clock.Elapsed.TotalSeconds;
            }
            else if (message.Type == RealtimeServerMessageType.ResponseDone)
            {
                break;
            }
        }

        return (first, started);
    }

    private static async Task<(double First, long Started)> SocketTurn(RealtimeSessionClient session, byte[] pcm, bool paced, CancellationToken cancellationToken)
    {
        await SpeakAsync(pcm, paced, chunk => session.SendInputAudioAsync(BinaryData.FromBytes(chunk), cancellationToken), cancellationToken).ConfigureAwait(false);

        await session.CommitPendingAudioAsync(cancellationToken).ConfigureAwait(false);
        long started = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        await session.StartResponseAsync(cancellationToken).ConfigureAwait(false);
        double first = double.NaN;
        await foreach (var update in session.ReceiveUpdatesAsync(cancellationToken).ConfigureAwait(false))
        {
            if (update is RealtimeServerUpdateResponseOutputAudioDelta && double.IsNaN(first))
            {
                first = clock.Elapsed.TotalSeconds;
            }
            else if (update is RealtimeServerUpdateResponseDone)
            {
                break;
            }
            else if (update is RealtimeServerUpdateError error)
            {
                throw new InvalidOperationException($"The server answered an error: {error.Error?.Message}");
            }
        }

        return (first, started);
    }

    // A turn the session's turn detection ends: the question as it is spoken, then silence until the answer is done; the
    // time from the end of the question's speech to the first audio.
    private static async Task<(double First, long Started)> ClientDetectedTurn(IRealtimeClientSession session, byte[] pcm, CancellationToken cancellationToken)
    {
        long firstAudio = 0;
        var reading = Task.Run(
            async () =>
            {
                await foreach (var message in session.GetStreamingResponseAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (message.Type == RealtimeServerMessageType.OutputAudioDelta && firstAudio == 0)
                    {
                        firstAudio = Stopwatch.GetTimestamp();
                    }
                    else if (message.Type == RealtimeServerMessageType.ResponseDone)
                    {
                        break;
                    }
                }
            },
            cancellationToken);
        Task Send(byte[] chunk) => session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(chunk, "audio/pcm")), cancellationToken);
        long speechEnd = await SpeakThenListenAsync(pcm, Send, reading, cancellationToken).ConfigureAwait(false);
        return (Stopwatch.GetElapsedTime(speechEnd, firstAudio).TotalSeconds, speechEnd);
    }

    private static async Task<(double First, long Started)> SocketDetectedTurn(RealtimeSessionClient session, byte[] pcm, CancellationToken cancellationToken)
    {
        long firstAudio = 0;
        var reading = Task.Run(
            async () =>
            {
                await foreach (var update in session.ReceiveUpdatesAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (update is RealtimeServerUpdateResponseOutputAudioDelta && firstAudio == 0)
                    {
                        firstAudio = Stopwatch.GetTimestamp();
                    }
                    else if (update is RealtimeServerUpdateResponseDone)
                    {
                        break;
                    }
                    else if (update is RealtimeServerUpdateError error)
                    {
                        throw new InvalidOperationException($"The server answered an error: {error.Error?.Message}");
                    }
                }
            },
            cancellationToken);
        long speechEnd = await SpeakThenListenAsync(pcm, chunk => session.SendInputAudioAsync(BinaryData.FromBytes(chunk), cancellationToken), reading, cancellationToken).ConfigureAwait(false);
        return (Stopwatch.GetElapsedTime(speechEnd, firstAudio).TotalSeconds, speechEnd);
    }

    // The question as it is spoken, then 100 ms of silence every 100 ms, as a microphone goes on sending, until the answer
    // has been read; returns when the question's speech ended.
    private static async Task<long> SpeakThenListenAsync(byte[] pcm, Func<byte[], Task> send, Task reading, CancellationToken cancellationToken)
    {
        await SpeakAsync(pcm, paced: true, send, cancellationToken).ConfigureAwait(false);
        long speechEnd = Stopwatch.GetTimestamp();
        byte[] silence = new byte[RealtimeRate / 10 * 2];
        while (!reading.IsCompleted)
        {
            await send(silence).ConfigureAwait(false);
            await Task.WhenAny(reading, Task.Delay(100, cancellationToken)).ConfigureAwait(false);
        }

        await reading.ConfigureAwait(false);
        return speechEnd;
    }

    // The question in 100 ms appends; paced, each no sooner than the speaker would have said it.
    private static async Task SpeakAsync(byte[] pcm, bool paced, Func<byte[], Task> send, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        int sent = 0;
        foreach (byte[] chunk in pcm.Chunk(RealtimeRate / 10 * 2))
        {
            await send(chunk).ConfigureAwait(false);
            sent += chunk.Length;
            var due = TimeSpan.FromSeconds(sent / 2.0 / RealtimeRate) - clock.Elapsed;
            if (paced && due > TimeSpan.Zero)
            {
                await Task.Delay(due, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // The history case's characters: as asked, or as many as make its tokens in this model's tokenizer.
    private static int HistoryCharacters(MiniOmniEngine engine, ConversationSettings settings)
    {
        if (settings.HistoryCharacters > 0)
        {
            return settings.HistoryCharacters;
        }

        string sample = Filler(4000);
        double charactersPerToken = sample.Length / (double)Math.Max(1, engine.TokenizeText(sample).Length);
        int characters = (int)(settings.HistoryTokens * charactersPerToken);
        BenchTools.Console.MarkupLineInterpolated($"[grey]bench conversation: {settings.HistoryTokens} tokens of history are {characters} characters in this model's tokenizer ({charactersPerToken:F2} a token)[/]");
        return characters;
    }

    // Plain words, as long as asked.
    private static string Filler(int characters)
    {
        const string words = "we talked about the weather and the trip to the coast next week ";
        return string.Concat(Enumerable.Repeat(words, characters / words.Length + 1))[..Math.Max(1, characters)];
    }

    /// <summary>The machine's load average (1, 5, 15 minutes) where Linux reports it: the machine is shared.</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    private static async Task<T> Status<T>(string what, Func<Task<T>> work)
    {
        var result = await work().ConfigureAwait(false);
        BenchTools.Console.MarkupLineInterpolated($"[grey]bench conversation: {what}: {result} (load {LoadAverage()})[/]");
        return result;
    }
}
