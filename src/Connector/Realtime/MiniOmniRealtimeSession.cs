using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// A realtime conversation with Mini-Omni over a shared engine. Client messages are handled one at a time: input audio
/// goes to the <see cref="RealtimeTurnTaker"/> (16 kHz, turn detection), response requests and barge-ins to the
/// <see cref="RealtimeResponder"/>, created items to <see cref="RealtimeConversationItems"/>, and spoken turns are
/// transcribed by the <see cref="RealtimeTranscriber"/>. All engine work of the session runs one item after another in
/// the order asked; its messages leave through a bounded <see cref="RealtimeOutbox"/>. Sessions share nothing but the engine.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class MiniOmniRealtimeSession : IRealtimeClientSession, IRealtimeTurnHandler
{
    private readonly RealtimeSessionContext _session;
    private readonly RealtimeTurnTaker _turns;
    private readonly RealtimeTranscriber _transcriber;
    private readonly RealtimeConversationItems _items;
    private readonly RealtimeResponder _responder;
    private readonly RealtimeItemEditor _editor;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _disposed;
    private int _reading;

    public MiniOmniRealtimeSession(IMiniOmniEngine engine, RealtimeSessionSettings settings, MiniOmniRealtimeClientOptions clientOptions, ChatClientMetadata metadata, ILogger logger)
    {
        _session = new RealtimeSessionContext(engine, settings, clientOptions, metadata, logger);
        _turns = new RealtimeTurnTaker(_session, this);
        _transcriber = new RealtimeTranscriber(_session);
        _items = new RealtimeConversationItems(_session, _transcriber);
        _responder = new RealtimeResponder(_session, _turns, _items, _transcriber);
        _editor = new RealtimeItemEditor(_session, _responder, _transcriber);
    }

    /// <inheritdoc />
    public RealtimeSessionOptions? Options => _session.Settings.Options;

    /// <summary>Completes once the next preamble's decode ahead, if one runs, has ended (a test seam).</summary>
    internal Task PreambleAheadIdle => _session.PreambleAhead.Idle;

    /// <inheritdoc />
    public async Task SendAsync(RealtimeClientMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            switch (message)
            {
                case InputAudioBufferAppendRealtimeClientMessage append:
                    await _turns.AppendAsync(append).ConfigureAwait(false);
                    break;
                case InputAudioBufferCommitRealtimeClientMessage:
                    await _turns.CommitBufferAsync(respond: false).ConfigureAwait(false);
                    break;
                case CreateResponseRealtimeClientMessage create:
                    await _responder.CreateAsync(create).ConfigureAwait(false);
                    break;
                case CreateConversationItemRealtimeClientMessage create:
                    await _items.AddAsync(create).ConfigureAwait(false);
                    break;
                case SessionUpdateRealtimeClientMessage update:
                    Update(update);
                    break;
                case InputAudioBufferClearRealtimeClientMessage:
                    await _turns.ClearAsync().ConfigureAwait(false);
                    break;
                case CancelResponseRealtimeClientMessage cancel:
                    await _responder.CancelAsync(cancel.ResponseId).ConfigureAwait(false);
                    break;
                case TruncateConversationItemRealtimeClientMessage truncate:
                    await _editor.TruncateAsync(truncate).ConfigureAwait(false);
                    break;
                case RetrieveConversationItemRealtimeClientMessage retrieve:
                    await _editor.RetrieveAsync(retrieve).ConfigureAwait(false);
                    break;
                case DeleteConversationItemRealtimeClientMessage delete:
                    await _editor.DeleteAsync(delete).ConfigureAwait(false);
                    break;
                default:
                    throw new RealtimeRequestException(
                        RealtimeErrorCodes.UnsupportedMessage,
                        $"Mini-Omni realtime sessions do not handle {message.GetType().Name}{(message.RawRepresentation is null ? string.Empty : " (raw provider messages included)")}; " +
                        $"they take {nameof(InputAudioBufferAppendRealtimeClientMessage)}, {nameof(InputAudioBufferCommitRealtimeClientMessage)}, {nameof(InputAudioBufferClearRealtimeClientMessage)}, " +
                        $"{nameof(CreateResponseRealtimeClientMessage)}, {nameof(CancelResponseRealtimeClientMessage)}, {nameof(CreateConversationItemRealtimeClientMessage)}, " +
                        $"{nameof(TruncateConversationItemRealtimeClientMessage)}, {nameof(RetrieveConversationItemRealtimeClientMessage)}, {nameof(DeleteConversationItemRealtimeClientMessage)} and {nameof(SessionUpdateRealtimeClientMessage)}.");
            }
        }
        catch (RealtimeRequestException e)
        {
            _session.Logger.LogWarning("Realtime session {Session}: {Message}", _session.IdPrefix, e.Message);
            await _session.EmitAsync(new ErrorRealtimeServerMessage { Error = new ErrorContent(e.Message) { ErrorCode = e.ErrorCode }, OriginatingMessageId = message.MessageId }).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    /// <exception cref="TimeoutException">The session ended because its messages were not read (see <see cref="MiniOmniRealtimeClientOptions.OutboundStallTimeout"/>).</exception>
    public async IAsyncEnumerable<RealtimeServerMessage> GetStreamingResponseAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _reading, 1) != 0)
        {
            throw new InvalidOperationException("The session's messages are already being read; one reader at a time.");
        }

        try
        {
            await foreach (var message in _session.Outbox.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return message;
            }
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _session.Metadata, _session.Engine, this);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Cancels the answer and any queued work; the message being handled, if any, ends with it.
        _session.Close();
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_session.Work.Drained, _transcriber.Following, _session.PreambleAhead.Idle).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _session.Logger.LogError(e, "Realtime session {Session}: its work failed while closing.", _session.IdPrefix);
        }
        finally
        {
            _gate.Release();
        }

        // Its preambles kept in the engine's prompt cache serve no one once it has ended.
        if (_session.Engine is IPromptCacheOwners cache)
        {
            try
            {
                await cache.ForgetAsync(_session).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
            {
                // The engine was disposed or has failed: its cache is gone with it.
            }
        }

        _session.Outbox.Complete();
        _session.Dispose();
    }

    Task IRealtimeTurnHandler.SpeechStartedAsync() =>
        _session.Settings.TurnDetection!.AllowInterruption ? _responder.InterruptAsync() : Task.CompletedTask;

    async Task IRealtimeTurnHandler.TurnCommittedAsync(ConversationEntry entry, bool respond)
    {
        if (_session.Settings.Transcribes)
        {
            _transcriber.Queue(entry);
        }
        else if (respond)
        {
            await _responder.CreateAsync(null).ConfigureAwait(false);
        }
        else if (_session.Settings.TranscribesUserSpeech(_session.ClientOptions))
        {
            _transcriber.Defer(entry);
        }
    }

    private void Update(SessionUpdateRealtimeClientMessage update)
    {
        var options = update.Options ?? throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, "The session update carries no options.");
        var settings = RealtimeSessionSettings.From(options);
        _turns.Update(_session.Settings, settings);
        _session.Settings = settings;
    }
}
