using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// What every part of one realtime session shares: the engine, the client's options, the session's settings, its
/// conversation, its outbound messages, its queue of engine work, its lifetime and its ids.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeSessionContext : IDisposable
{
    private readonly CancellationTokenSource _lifetime = new();
    private int _nextId;

    public RealtimeSessionContext(IMiniOmniEngine engine, RealtimeSessionSettings settings, MiniOmniRealtimeClientOptions clientOptions, ChatClientMetadata metadata, ILogger logger)
    {
        Engine = engine;
        Settings = settings;
        ClientOptions = clientOptions;
        Metadata = metadata;
        Logger = logger;
        IdPrefix = Guid.NewGuid().ToString("N")[..8];
        Outbox = new RealtimeOutbox(clientOptions.OutboundCapacity, clientOptions.OutboundStallTimeout, clientOptions.TimeProvider, _lifetime.Token, OnOutboxStalled);
        PreambleAhead = new RealtimePreambleAhead(this);
    }

    /// <summary>The engine every answer and transcription runs on.</summary>
    public IMiniOmniEngine Engine { get; }

    /// <summary>The client's options.</summary>
    public MiniOmniRealtimeClientOptions ClientOptions { get; }

    /// <summary>The metadata the session's <c>GetService</c> answers with.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>The session's logger.</summary>
    public ILogger Logger { get; }

    /// <summary>The session's current settings (replaced by a session update).</summary>
    public RealtimeSessionSettings Settings { get; set; }

    /// <summary>The session's turns.</summary>
    public RealtimeConversation Conversation { get; } = new();

    /// <summary>The messages on their way to the client.</summary>
    public RealtimeOutbox Outbox { get; }

    /// <summary>Decodes the next turn's preamble into the engine's prompt cache while the conversation waits for it.</summary>
    public RealtimePreambleAhead PreambleAhead { get; }

    /// <summary>The session's engine work, run one item after another in the order asked.</summary>
    public RealtimeWorkQueue Work { get; } = new();

    /// <summary>Cancelled when the session closes or fails: every answer and transcription of the session stops.</summary>
    public CancellationToken Lifetime => _lifetime.Token;

    /// <summary>A short random prefix that tells the session's ids and log lines apart from other sessions'.</summary>
    public string IdPrefix { get; }

    /// <summary>Ends the session's work: answers and transcriptions stop at their next step.</summary>
    public void Close() => _lifetime.Cancel();

    /// <summary>A new id of <paramref name="kind"/> ("item", "resp"), unique in the session.</summary>
    public string NewId(string kind) => $"{kind}_{IdPrefix}{Interlocked.Increment(ref _nextId)}";

    /// <summary>Emits <paramref name="message"/>; see <see cref="RealtimeOutbox.EmitAsync"/>.</summary>
    public ValueTask EmitAsync(RealtimeServerMessage message) => Outbox.EmitAsync(message);

    /// <inheritdoc />
    public void Dispose() => _lifetime.Dispose();

    private void OnOutboxStalled(Exception error)
    {
        Logger.LogWarning("Realtime session {Session}: {Message}", IdPrefix, error.Message);
        Close();
    }
}
