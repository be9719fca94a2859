using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>
/// The Microsoft.Extensions.AI clients the API maps onto, made once over the loaded engine: every endpoint goes through
/// them, so the server has no engine code path of its own.
/// </summary>
public sealed class ServerClients(ModelHost host, IOptions<MiniOmniServerOptions> options, ILoggerFactory loggers)
{
    private readonly Lock _lock = new();
    private Clients? _clients;

    /// <summary>The chat client (text and speech in and out, tools).</summary>
    public IChatClient Chat => Get().Chat;

    /// <summary>The speech-to-text client (transcriptions).</summary>
    public ISpeechToTextClient SpeechToText => Get().SpeechToText;

    /// <summary>The text-to-speech client (speech).</summary>
    public ITextToSpeechClient TextToSpeech => Get().TextToSpeech;

    /// <summary>The realtime client (WebSocket sessions).</summary>
    public IRealtimeClient Realtime => Get().Realtime;

    /// <summary>The loaded model's id.</summary>
    public string ModelId => host.Engine.ModelId;

    private Clients Get()
    {
        var loaded = host.Engine;
        lock (_lock)
        {
            if (_clients?.Engine != loaded)
            {
                var limits = options.Value.Limits;
                var engine = new BudgetedEngine(loaded, limits.MaxAnswerTokens);
                var thinker = ServerThinker.Create(options.Value.Thinker);
                _clients = new Clients(
                    loaded,
                    thinker is null
                        ? new MiniOmniChatClient(engine, null, loggers.CreateLogger<MiniOmniChatClient>())
                        : new MiniOmniVoiceChatClient(thinker, engine, new MiniOmniVoiceOptions { EncoderMode = options.Value.EncoderMode, TranscriptMaxTokens = Math.Min(256, limits.MaxAnswerTokens) }, loggers.CreateLogger<MiniOmniVoiceChatClient>()),
                    new MiniOmniSpeechToTextClient(engine) { MaxAudioDuration = TimeSpan.FromSeconds(limits.MaxTranscriptionSeconds) },
                    engine.AsITextToSpeechClient(),
                    engine.AsIRealtimeClient(
                        new MiniOmniRealtimeClientOptions
                        {
                            OutboundCapacity = limits.RealtimeOutboundMessages,
                            OutboundStallTimeout = TimeSpan.FromSeconds(limits.RealtimeStallSeconds),
                            TranscribeUserSpeech = options.Value.TranscribeRealtimeSpeech,
                            PrefillHistoryAhead = options.Value.PrefillRealtimeHistoryAhead,
                            EncoderMode = options.Value.EncoderMode,
                            TranscriptionMaxTokens = Math.Min(256, limits.MaxAnswerTokens),
                            Thinker = thinker,
                        },
                        loggers));
            }

            return _clients;
        }
    }

    /// <summary>
    /// Holds every answer the clients ask of the engine to <see cref="ServerLimits.MaxAnswerTokens"/> steps, as a cap: a
    /// request without a budget keeps the engine's default (which fits the model's context) under the limit, rather
    /// than being given the limit itself, which a 2048-position model could not fit beside any prompt.
    /// </summary>
    private sealed class BudgetedEngine(IMiniOmniEngine inner, int maxTokens) : DelegatingMiniOmniEngine(inner)
    {
        public override IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, CancellationToken cancellationToken = default) =>
            InnerEngine.GenerateAsync(request with { MaxTokensCap = request.MaxTokensCap > 0 ? Math.Min(request.MaxTokensCap, maxTokens) : maxTokens }, cancellationToken);
    }

    private sealed record Clients(IMiniOmniEngine Engine, IChatClient Chat, ISpeechToTextClient SpeechToText, ITextToSpeechClient TextToSpeech, IRealtimeClient Realtime);
}
