using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Server.Api;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Realtime;

/// <summary>Counts the realtime sessions open, against <see cref="ServerLimits.MaxRealtimeSessions"/>.</summary>
public sealed class RealtimeSessions(IOptions<MiniOmniServerOptions> options)
{
    private int _open;

    /// <summary>Sessions open now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Takes a place, unless all are taken.</summary>
    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _open) <= options.Value.Limits.MaxRealtimeSessions)
        {
            return true;
        }

        Interlocked.Decrement(ref _open);
        return false;
    }

    /// <summary>Gives a place back.</summary>
    public void Exit() => Interlocked.Decrement(ref _open);
}

/// <summary>GET /v1/realtime: a WebSocket speaking OpenAI's Realtime events, each session one <see cref="IRealtimeClientSession"/>.</summary>
internal static class RealtimeEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServerClients clients, RealtimeSessions sessions, ServerMetrics metrics,
        IOptions<MiniOmniServerOptions> options, IHostApplicationLifetime lifetime, ILoggerFactory loggers)
    {
        var limits = options.Value.Limits;
        if (!context.WebSockets.IsWebSocketRequest)
        {
            throw ApiRequestException.Invalid("/v1/realtime is a WebSocket: connect with a WebSocket client (ws://.../v1/realtime).", code: "websocket_required");
        }

        if (!sessions.TryEnter())
        {
            await new ApiError(429, $"All {limits.MaxRealtimeSessions} realtime sessions are in use (MiniOmni:Limits:MaxRealtimeSessions); try again shortly.", "rate_limit_exceeded", null, "too_many_sessions")
                .WriteAsync(context, limits.RetryAfterSeconds).ConfigureAwait(false);
            return;
        }

        metrics.Session(+1);
        try
        {
            bool transcription = context.Request.Query["intent"] == "transcription";
            var initial = new RealtimeSessionOptions
            {
                SessionKind = transcription ? RealtimeSessionKind.Transcription : RealtimeSessionKind.Conversation,
                Model = context.Request.Query["model"].FirstOrDefault() ?? clients.ModelId,
                InputAudioFormat = new RealtimeAudioFormat("audio/pcm", 24000),
                OutputAudioFormat = new RealtimeAudioFormat("audio/pcm", 24000),
                OutputModalities = ["audio"],
                // Unset: the engine's default budget, within the model's context; the server's limit caps every answer.
                MaxOutputTokens = null,
                VoiceActivityDetection = new MiniOmniVoiceActivityDetectionOptions(),
                // The server's setting says whether spoken turns are transcribed until the client says otherwise.
                TranscriptionOptions = options.Value.TranscribeRealtimeSpeech ? new TranscriptionOptions { ModelId = clients.ModelId } : null,
            };
            // Check the model before the upgrade, so that a server still loading answers 503 in plain HTTP.
            var client = clients.Realtime;
            var requested = context.WebSockets.WebSocketRequestedProtocols;
            string? protocol = requested.Contains("realtime") ? "realtime" : requested.Contains(RealtimeProtocol.BetaSubprotocol) ? RealtimeProtocol.BetaSubprotocol : null;
            var version = new RealtimeProtocol(RealtimeProtocol.AsksForBeta(context.Request.Headers, requested));
            using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
            {
                SubProtocol = protocol,
                // Unsolicited pongs keep proxies from dropping a quiet connection. No pong is awaited: a client answers pings
                // only while it reads, and one busy sending audio is not dead; a client that stops reading is caught by
                // the stall timeout on sends instead.
                KeepAliveInterval = TimeSpan.FromSeconds(15),
            }).ConfigureAwait(false);
            await using var session = await client.CreateSessionAsync(initial, context.RequestAborted).ConfigureAwait(false);
            var connection = new RealtimeConnection(socket, session, initial, version, limits, metrics, loggers.CreateLogger<RealtimeConnection>());
            using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
            await connection.RunAsync(ending.Token).ConfigureAwait(false);
        }
        finally
        {
            metrics.Session(-1);
            sessions.Exit();
        }
    }
}

/// <summary>
/// One realtime WebSocket: client events read, translated and handed to the session one at a time; the session's
/// messages translated and sent as they come. A client that stops reading is cut off: a send that does not complete
/// within the stall timeout aborts the socket, and the session's own bounded queue ends it the same way.
/// </summary>
internal sealed class RealtimeConnection(
    WebSocket socket, IRealtimeClientSession session, RealtimeSessionOptions initial, RealtimeProtocol protocol, ServerLimits limits, ServerMetrics metrics, ILogger logger)
{
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly RealtimeClientEvents _reader = new(initial, limits.MaxAnswerTokens, protocol);
    private readonly RealtimeServerEvents _writer = new(metrics, initial.OutputAudioFormat?.SampleRate ?? 24000, protocol);
    private readonly string _sessionId = $"sess_{Guid.NewGuid():N}";

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await SendAsync(_writer.Session("session.created", _sessionId, initial), stop.Token).ConfigureAwait(false);
        var sending = Task.Run(() => PumpSessionAsync(stop), CancellationToken.None);
        string? closeReason = null;
        var closeStatus = WebSocketCloseStatus.NormalClosure;
        try
        {
            (closeStatus, closeReason) = await ReceiveAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            closeStatus = cancellationToken.IsCancellationRequested ? WebSocketCloseStatus.EndpointUnavailable : WebSocketCloseStatus.PolicyViolation;
            closeReason = cancellationToken.IsCancellationRequested ? "The server is shutting down." : "The client stopped reading the session's events.";
        }
        catch (WebSocketException e)
        {
            logger.LogInformation("Realtime {Session}: the connection broke ({Message}).", _sessionId, e.Message);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Realtime {Session} failed.", _sessionId);
            (closeStatus, closeReason) = (WebSocketCloseStatus.InternalServerError, "The session failed; the server's log has the details.");
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await session.DisposeAsync().ConfigureAwait(false);
            await sending.ConfigureAwait(false);
            _writer.Abandon();
        }

        await CloseAsync(closeStatus, closeReason).ConfigureAwait(false);
    }

    // Reads client events until the client closes; returns how to close.
    private async Task<(WebSocketCloseStatus, string?)> ReceiveAsync(CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        var idle = TimeSpan.FromSeconds(limits.RealtimeIdleSeconds);
        while (true)
        {
            buffer.ResetWrittenCount();
            ValueWebSocketReceiveResult received;
            using (var quiet = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                quiet.CancelAfter(idle);
                try
                {
                    do
                    {
                        received = await socket.ReceiveAsync(buffer.GetMemory(16 * 1024), quiet.Token).ConfigureAwait(false);
                        buffer.Advance(received.Count);
                        if (buffer.WrittenCount > limits.MaxRequestBodyBytes)
                        {
                            return (WebSocketCloseStatus.MessageTooBig, $"An event was over {limits.MaxRequestBodyBytes} bytes (MiniOmni:Limits:MaxRequestBodyBytes).");
                        }
                    }
                    while (!received.EndOfMessage);
                }
                catch (OperationCanceledException) when (quiet.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    return (WebSocketCloseStatus.PolicyViolation, $"No event for {limits.RealtimeIdleSeconds:0} s (MiniOmni:Limits:RealtimeIdleSeconds).");
                }
            }

            if (received.MessageType == WebSocketMessageType.Close)
            {
                return (WebSocketCloseStatus.NormalClosure, null);
            }

            if (received.MessageType != WebSocketMessageType.Text)
            {
                await SendAsync(_writer.Error("Events are JSON text messages; a binary message was ignored.", "invalid_event"), cancellationToken).ConfigureAwait(false);
                continue;
            }

            await HandleAsync(buffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(ReadOnlyMemory<byte> json, CancellationToken cancellationToken)
    {
        RealtimeClientMessage message;
        bool transcriptionSession;
        try
        {
            using var document = JsonDocument.Parse(json);
            message = _reader.Read(document.RootElement);
            transcriptionSession = document.RootElement.GetProperty("type").ValueEquals("transcription_session.update");
        }
        catch (JsonException e)
        {
            await SendAsync(_writer.Error($"The event is not valid JSON: {e.Message}", "invalid_json"), cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (RealtimeProtocolException e)
        {
            await SendAsync(_writer.Error(e.Message, e.Code, e.Param, e.EventId), cancellationToken).ConfigureAwait(false);
            return;
        }

        await session.SendAsync(message, cancellationToken).ConfigureAwait(false);
        if (message is SessionUpdateRealtimeClientMessage update && ReferenceEquals(session.Options, update.Options))
        {
            // The session took the update (a refused one left its options and sent an error).
            _reader.Accept(update.Options);
            await SendAsync(
                transcriptionSession ? _writer.TranscriptionSession(_sessionId, update.Options) : _writer.Session("session.updated", _sessionId, update.Options),
                cancellationToken).ConfigureAwait(false);
        }
    }

    // Sends the session's messages until its stream ends; a stream that ends in an error (a stalled client) closes the connection.
    private async Task PumpSessionAsync(CancellationTokenSource stop)
    {
        try
        {
            await foreach (var message in session.GetStreamingResponseAsync(stop.Token).ConfigureAwait(false))
            {
                foreach (byte[] e in _writer.From(message))
                {
                    await SendAsync(e, stop.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is TimeoutException or WebSocketException)
        {
            logger.LogWarning("Realtime {Session}: {Message} Closing the connection.", _sessionId, e.Message);
            socket.Abort();
            await stop.CancelAsync().ConfigureAwait(false);
        }
    }

    // One sender at a time; a send the client does not take within the stall timeout means it stopped reading: the socket is aborted.
    private async Task SendAsync(byte[] message, CancellationToken cancellationToken)
    {
        await _sending.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            stall.CancelAfter(TimeSpan.FromSeconds(limits.RealtimeStallSeconds));
            try
            {
                await socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, stall.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stall.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("Realtime {Session}: the client took none of an event for {Seconds} s; closing the connection.", _sessionId, limits.RealtimeStallSeconds);
                socket.Abort();
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The client stopped reading.");
            }
        }
        finally
        {
            _sending.Release();
        }
    }

    private async Task CloseAsync(WebSocketCloseStatus status, string? reason)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await socket.CloseOutputAsync(status, reason, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
            socket.Abort();
        }
    }
}
