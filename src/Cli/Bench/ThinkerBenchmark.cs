// MEAI001, OPENAI002: the realtime surfaces of Microsoft.Extensions.AI and of the OpenAI SDK are marked experimental;
// measuring them is what this benchmark is for.
#pragma warning disable MEAI001, OPENAI002

using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Speech;
using OpenAI;
using OpenAI.Realtime;
using Spectre.Console;
using MeaiAudioFormat = Microsoft.Extensions.AI.RealtimeAudioFormat;
using MeaiSessionOptions = Microsoft.Extensions.AI.RealtimeSessionOptions;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>What one <c>miniomni bench thinker</c> run measures.</summary>
internal sealed record ThinkerBenchSettings
{
    /// <summary>Length of the question every turn asks, in seconds.</summary>
    public double QuestionSeconds { get; init; } = 2.4;

    /// <summary>Turns of each conversation; turn 1 is the first after the engine said it was ready.</summary>
    public int Turns { get; init; } = 3;

    /// <summary>How the question is encoded.</summary>
    public EncoderMode Encoder { get; init; } = EncoderMode.Fast;

    /// <summary>
    /// The most tokens of a question's transcript. Random weights never end a transcript, so without a cap they write the
    /// whole budget; a real model ends a 2.4 s question's transcript after about a dozen tokens.
    /// </summary>
    public int TranscriptTokens { get; init; } = 12;

    /// <summary>The stand-in thinker's answer, with sentence boundaries in it.</summary>
    public string Answer { get; init; } = ThinkerBenchmark.DefaultAnswer;

    /// <summary>The stand-in thinker's pieces per second after its first.</summary>
    public double TokensPerSecond { get; init; } = 30;

    /// <summary>The stand-in thinker's delay before its first piece.</summary>
    public TimeSpan FirstTokenDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// The most steps of one spoken answer (the server's MaxAnswerTokens). Random weights never end their speech, so they
    /// speak to the read-aloud budget (6 steps a token: over a minute for the default answer, whose ~130 characters are
    /// ~130 tokens of the synth tokenizer); a real model ends soon after the text. 200 steps take the whole text and a little more.
    /// </summary>
    public int AnswerSteps { get; init; } = 200;

    /// <summary>Engine threads (null: every core).</summary>
    public int? Threads { get; init; }

    /// <summary>Nice value of the engine's threads, as the server's MiniOmni:EngineNiceness.</summary>
    public int Niceness { get; init; }

    /// <summary>The paths measured (of <see cref="ThinkerBenchmark.Paths"/>).</summary>
    public IReadOnlyList<string> Paths { get; init; } = ThinkerBenchmark.Paths;
}

/// <summary>
/// Issue 22's goals for a thinker: a loopback stand-in (<see cref="LoopbackThinker"/>, 30 pieces/s after 200 ms) writes
/// the answers and Mini-Omni hears and speaks them, through the voice middleware over the engine
/// (<see cref="MiniOmniVoiceChatClient"/>), through <see cref="IRealtimeClient"/> and through the server's /v1/realtime
/// socket (the official OpenAI SDK), each on an engine loaded afresh. Per turn: how long the question's transcription
/// took (or, in the realtime paths, how long until the thinker was asked), the thinker's first token, the first audio
/// after the end of the turn, and the goal <c>first audio &lt;= transcription + first token + 0.8 s</c>; then the
/// speech's real-time factor once started and the largest gap a player starting at the first chunk would hear.
/// </summary>
internal static class ThinkerBenchmark
{
    /// <summary>An answer of three sentences, so that speech crosses sentence boundaries while the thinker streams.</summary>
    public const string DefaultAnswer = "Sure. It is sunny and warm today, with a light breeze from the sea. Tomorrow brings clouds in the morning and rain by the evening.";

    /// <summary>The paths a turn is measured through.</summary>
    public static readonly string[] Paths = ["voice_client", "realtime_client", "server_socket"];

    /// <summary>The goal's allowance for the voice: from the thinker's first token to the first audio.</summary>
    public const double VoiceAllowanceSeconds = 0.8;

    private const int RealtimeRate = 24000;

    public static async Task<Dictionary<string, object>> RunAsync(ModelDirectory directory, ThinkerBenchSettings settings, CancellationToken cancellationToken)
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions
        {
            Answer = settings.Answer,
            TokensPerSecond = settings.TokensPerSecond,
            FirstTokenDelay = settings.FirstTokenDelay,
        });
        var figures = new Dictionary<string, object>
        {
            ["model"] = directory.Path,
            ["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            ["load_average"] = ConversationBenchmark.LoadAverage(),
            ["question_seconds"] = settings.QuestionSeconds,
            ["encoder"] = settings.Encoder.ToString().ToLowerInvariant(),
            ["transcript_tokens"] = settings.TranscriptTokens,
            ["answer_steps"] = settings.AnswerSteps,
            ["engine_niceness"] = settings.Niceness,
            ["thinker"] = thinker.ToString(),
            ["thinker_answer_characters"] = settings.Answer.Length,
            ["goal"] = $"first_audio_s <= transcription_s + thinker_first_token_s + {VoiceAllowanceSeconds} s; speech_rtf <= 1 and largest_gap_s 0 once started (gaps: silences of a player that starts at the first chunk)",
        };
        var conversation = new ConversationSettings
        {
            QuestionSeconds = settings.QuestionSeconds,
            AnswerSteps = settings.AnswerSteps,
            Threads = settings.Threads,
            Niceness = settings.Niceness,
            WarmUp = true,
            Transcribe = false,
        };
        string[] serverThinker = ["--MiniOmni:Thinker:Endpoint", thinker.Endpoint.ToString(), "--MiniOmni:Thinker:Model", "stand-in"];
        var thinkerClient = new OpenAIClient(new ApiKeyCredential("loopback"), new OpenAIClientOptions { Endpoint = thinker.Endpoint, RetryPolicy = new ClientRetryPolicy(0) })
            .GetChatClient("stand-in").AsIChatClient();
        foreach (string path in settings.Paths)
        {
            var ((turns, asrAlone), load) = await ConversationBenchmark.WithEngineAsync(
                directory,
                conversation,
                settings.Encoder,
                serverThinker,
                engine => new TranscriptCappedEngine(engine, settings.TranscriptTokens),
                async (engine, server) =>
                {
                    var turns = await Conversation(path, engine, server, thinkerClient, thinker, settings, cancellationToken).ConfigureAwait(false);
                    // The transcription alone, on the same warm engine: what the thinker cannot help waiting for.
                    double asr = await TranscribeAlone(engine, Question(settings.QuestionSeconds, settings.Turns), settings.Encoder, cancellationToken).ConfigureAwait(false);
                    return (turns, asr);
                },
                cancellationToken).ConfigureAwait(false);
            figures[$"{path}_load_s"] = Math.Round(load, 2);
            figures[$"{path}_asr_alone_s"] = Math.Round(asrAlone, 3);
            figures[path] = turns;
        }

        figures["load_average_after"] = ConversationBenchmark.LoadAverage();
        figures["peak_working_set_mib"] = Math.Round(BenchTools.PeakResidentMiB(), 1);
        return figures;
    }

    // The same question, a little louder each turn, so that no transcript cache hears a turn twice.
    private static float[] Question(double seconds, int turn)
    {
        float[] question = AnswerBenchmarks.Question(seconds);
        float gain = 1f + (0.01f * turn);
        for (int i = 0; i < question.Length; i++)
        {
            question[i] *= gain;
        }

        return question;
    }

    private static async Task<List<Dictionary<string, object?>>> Conversation(
        string path, IMiniOmniEngine engine, Uri server, IChatClient thinkerClient, LoopbackThinker thinker, ThinkerBenchSettings settings, CancellationToken cancellationToken)
    {
        var turns = new List<Dictionary<string, object?>>();
        switch (path)
        {
            case "voice_client":
                using (var voice = thinkerClient.AsBuilder().UseMiniOmniVoice(engine, o => { o.EncoderMode = settings.Encoder; o.TranscriptMaxTokens = settings.TranscriptTokens; o.MaxSpeechSteps = settings.AnswerSteps; }).Build())
                {
                    for (int turn = 0; turn < settings.Turns; turn++)
                    {
                        byte[] wav = Wav16k(Question(settings.QuestionSeconds, turn));
                        turns.Add(await Status(path, turn, thinker, () => VoiceTurn(voice, wav, cancellationToken)).ConfigureAwait(false));
                    }
                }

                break;
            case "realtime_client":
                var client = engine.AsIRealtimeClient(new MiniOmniRealtimeClientOptions
                {
                    TranscribeUserSpeech = false,
                    EncoderMode = settings.Encoder,
                    TranscriptionMaxTokens = settings.TranscriptTokens,
                    Thinker = thinkerClient,
                });
                await using (var session = await client.CreateSessionAsync(new MeaiSessionOptions
                {
                    InputAudioFormat = new MeaiAudioFormat("audio/pcm", RealtimeRate),
                    VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
                    MaxOutputTokens = settings.AnswerSteps,
                }, cancellationToken).ConfigureAwait(false))
                {
                    for (int turn = 0; turn < settings.Turns; turn++)
                    {
                        byte[] pcm = Pcm24k(Question(settings.QuestionSeconds, turn));
                        turns.Add(await Status(path, turn, thinker, () => ClientTurn(session, pcm, cancellationToken)).ConfigureAwait(false));
                    }
                }

                break;
            default:
                var sdk = new RealtimeClient(new ApiKeyCredential("loopback"), new OpenAI.Realtime.RealtimeClientOptions { Endpoint = new Uri(server, "/v1") });
                using (var session = await sdk.StartConversationSessionAsync("mini-omni", cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    var input = new RealtimeConversationSessionInputAudioOptions();
                    input.DisableTurnDetection();
                    await session.ConfigureConversationSessionAsync(new RealtimeConversationSessionOptions
                    {
                        AudioOptions = new RealtimeConversationSessionAudioOptions { InputAudioOptions = input },
                        MaxOutputTokenCount = settings.AnswerSteps,
                    }, cancellationToken).ConfigureAwait(false);
                    for (int turn = 0; turn < settings.Turns; turn++)
                    {
                        byte[] pcm = Pcm24k(Question(settings.QuestionSeconds, turn));
                        turns.Add(await Status(path, turn, thinker, () => SocketTurn(session, pcm, cancellationToken)).ConfigureAwait(false));
                    }
                }

                break;
        }

        return turns;
    }

    private static byte[] Wav16k(float[] question)
    {
        using var buffer = new MemoryStream();
        Pcm16Wave.Write(buffer, question, 16000);
        return buffer.ToArray();
    }

    private static byte[] Pcm24k(float[] question) => Pcm16Wave.ToPcm16Bytes(new StreamingResampler(16000, RealtimeRate).Resample(question));

    // The voice middleware: a WAV question in, the transcript first (its time is the transcription's), then speech chunks.
    private static async Task<TurnTrace> VoiceTurn(IChatClient voice, byte[] wav, CancellationToken cancellationToken)
    {
        var trace = new TurnTrace();
        await foreach (var update in voice.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(wav, MiniOmniMediaTypes.Wav)])], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (update.AdditionalProperties?.ContainsKey(MiniOmniVoiceChatClient.TranscriptKey) == true)
            {
                trace.Transcribed = Stopwatch.GetTimestamp();
            }

            foreach (var data in update.Contents.OfType<DataContent>().Where(d => d.MediaType == MiniOmniMediaTypes.SpeechChunk))
            {
                trace.Chunk(data.Data.Length / 2);
            }
        }

        return trace;
    }

    private static async Task<TurnTrace> ClientTurn(IRealtimeClientSession session, byte[] pcm, CancellationToken cancellationToken)
    {
        foreach (byte[] chunk in pcm.Chunk(RealtimeRate / 10 * 2))
        {
            await session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(chunk, "audio/pcm")), cancellationToken).ConfigureAwait(false);
        }

        await session.SendAsync(new InputAudioBufferCommitRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        var trace = new TurnTrace();
        await session.SendAsync(new CreateResponseRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        await foreach (var message in session.GetStreamingResponseAsync(cancellationToken).ConfigureAwait(false))
        {
            if (message is OutputTextAudioRealtimeServerMessage { Type: var type, Audio: { } audio } && type == RealtimeServerMessageType.OutputAudioDelta)
            {
                trace.Chunk(Convert.FromBase64String(audio).Length / 2);
            }
            else if (message is ErrorRealtimeServerMessage error)
            {
                throw new InvalidOperationException($"The session answered an error: {error.Error?.Message}");
            }
            else if (message.Type == RealtimeServerMessageType.ResponseDone)
            {
                break;
            }
        }

        return trace;
    }

    private static async Task<TurnTrace> SocketTurn(RealtimeSessionClient session, byte[] pcm, CancellationToken cancellationToken)
    {
        foreach (byte[] chunk in pcm.Chunk(RealtimeRate / 10 * 2))
        {
            await session.SendInputAudioAsync(BinaryData.FromBytes(chunk), cancellationToken).ConfigureAwait(false);
        }

        await session.CommitPendingAudioAsync(cancellationToken).ConfigureAwait(false);
        var trace = new TurnTrace();
        await session.StartResponseAsync(cancellationToken).ConfigureAwait(false);
        await foreach (var update in session.ReceiveUpdatesAsync(cancellationToken).ConfigureAwait(false))
        {
            if (update is RealtimeServerUpdateResponseOutputAudioDelta delta)
            {
                trace.Chunk(delta.Delta.ToArray().Length / 2);
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

        return trace;
    }

    private static async Task<double> TranscribeAlone(IMiniOmniEngine engine, float[] question, EncoderMode mode, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        await foreach (var _ in engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = question, EncoderMode = mode }, cancellationToken).ConfigureAwait(false))
        {
        }

        return clock.Elapsed.TotalSeconds;
    }

    private static async Task<Dictionary<string, object?>> Status(string path, int turn, LoopbackThinker thinker, Func<Task<TurnTrace>> work)
    {
        int asked = thinker.Timings.Count;
        var trace = await work().ConfigureAwait(false);
        var timings = thinker.Timings;
        if (timings.Count != asked + 1)
        {
            throw new InvalidOperationException($"The turn asked the thinker {timings.Count - asked} times; one was expected.");
        }

        var figures = trace.Figures(timings[^1]);
        BenchTools.Console.MarkupLineInterpolated(
            $"[grey]bench thinker: {path}, turn {turn + 1}: transcription {figures["transcription_s"]} s, thinker first token {figures["thinker_first_token_s"]} s, first audio {figures["first_audio_s"]} s (goal {figures["goal_limit_s"]} s: {((bool)figures["goal_met"]! ? "met" : "not met")}), speech rtf {figures["speech_rtf"]}, largest gap {figures["largest_gap_s"]} s (load {ConversationBenchmark.LoadAverage()})[/]");
        return figures;
    }

    /// <summary>When a turn's events came, from the end of the turn (the response request, or the voice request).</summary>
    private sealed class TurnTrace
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        private readonly List<(double At, double Seconds)> _chunks = [];

        public long Transcribed { get; set; }

        public void Chunk(int samples)
        {
            if (samples > 0)
            {
                _chunks.Add((Seconds(Stopwatch.GetTimestamp()), samples / (double)RealtimeRate));
            }
        }

        public Dictionary<string, object?> Figures(LoopbackThinkerTiming thinker)
        {
            double asked = Seconds(thinker.ReceivedAt);
            double firstPiece = thinker.FirstPieceAt == 0 ? double.NaN : Seconds(thinker.FirstPieceAt);
            // The voice middleware reports its transcript; a realtime session asks the thinker once its transcript is done.
            double transcription = Transcribed != 0 ? Seconds(Transcribed) : asked;
            double firstToken = firstPiece - asked;
            double firstAudio = _chunks.Count > 0 ? _chunks[0].At : double.NaN;
            double limit = transcription + firstToken + VoiceAllowanceSeconds;

            // A player that starts at the first chunk runs dry when a chunk comes after everything before it has played; it
            // plays on from when the chunk comes. The longest of its silences, and all of them together.
            double playedUntil = firstAudio, gap = 0, silence = 0, audioBefore = 0;
            var gaps = new List<object>();
            for (int i = 0; i < _chunks.Count; i++)
            {
                var (at, seconds) = _chunks[i];
                if (at > playedUntil)
                {
                    // Where it falls: before which chunk, after how much speech.
                    gaps.Add(new { chunk = i + 1, after_speech_s = Round(audioBefore), silence_s = Round(at - playedUntil) });
                    gap = Math.Max(gap, at - playedUntil);
                    silence += at - playedUntil;
                    playedUntil = at;
                }

                playedUntil += seconds;
                audioBefore += seconds;
            }

            double total = _chunks.Sum(c => c.Seconds);
            double rtf = _chunks.Count > 1 ? (_chunks[^1].At - firstAudio) / (total - _chunks[0].Seconds) : double.NaN;
            return new()
            {
                ["transcription_s"] = Round(transcription),
                ["thinker_asked_s"] = Round(asked),
                ["thinker_first_token_s"] = Round(firstToken),
                ["first_audio_s"] = Round(firstAudio),
                ["voice_after_first_token_s"] = Round(firstAudio - firstPiece),
                ["goal_limit_s"] = Round(limit),
                ["goal_met"] = firstAudio <= limit,
                ["speech_s"] = Round(total),
                ["speech_chunks"] = _chunks.Count,
                ["first_chunk_s"] = _chunks.Count > 0 ? Round(_chunks[0].Seconds) : null,
                ["speech_rtf"] = Round(rtf),
                ["largest_gap_s"] = Round(gap),
                ["silence_s"] = Round(silence),
                ["silences"] = gaps,
                ["chunk_seconds"] = _chunks.Take(6).Select(c => Round(c.Seconds)).ToArray(),
            };
        }

        private double Seconds(long timestamp) => Stopwatch.GetElapsedTime(_start, timestamp).TotalSeconds;

        private static double Round(double value) => Math.Round(value, 3);
    }

    /// <summary>
    /// Caps transcripts at a real model's length: random weights never write the end of a transcript, so they would
    /// transcribe a 2.4 s question for the whole budget, which no real model does.
    /// </summary>
    private sealed class TranscriptCappedEngine(IMiniOmniEngine inner, int transcriptTokens) : DelegatingMiniOmniEngine(inner)
    {
        public override IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, CancellationToken cancellationToken = default) =>
            InnerEngine.GenerateAsync(request.Task == MiniOmniTask.Asr ? request with { MaxTokens = request.MaxTokens > 0 ? Math.Min(request.MaxTokens, transcriptTokens) : transcriptTokens } : request, cancellationToken);
    }
}
