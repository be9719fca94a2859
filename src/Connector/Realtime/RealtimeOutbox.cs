using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// The messages a realtime session sends its client, in a bounded queue. A writer waits while the queue is full
/// (backpressure: an answer streams no faster than its client reads); a client that reads nothing for the stall
/// timeout while the queue is full ends the session: the queue completes with a <see cref="TimeoutException"/>
/// (its reader gets the messages already queued, then the error), and the session's work is cancelled, so a client that
/// stops reading can never grow the server's memory.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeOutbox
{
    private readonly Channel<RealtimeServerMessage> _channel;
    private readonly int _capacity;
    private readonly TimeSpan _stallTimeout;
    private readonly TimeProvider _time;
    private readonly CancellationToken _lifetime;
    private readonly Action<Exception> _stalled;

    public RealtimeOutbox(int capacity, TimeSpan stallTimeout, TimeProvider time, CancellationToken lifetime, Action<Exception> stalled)
    {
        _capacity = capacity;
        _stallTimeout = stallTimeout;
        _time = time;
        _lifetime = lifetime;
        _stalled = stalled;
        _channel = Channel.CreateBounded<RealtimeServerMessage>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>The messages, in the order they were emitted; the queue's reader.</summary>
    public ChannelReader<RealtimeServerMessage> Reader => _channel.Reader;

    /// <summary>
    /// Queues <paramref name="message"/>, waiting while the queue is full. Never throws: once the session is closing or
    /// has failed, messages are dropped (nobody will read them).
    /// </summary>
    public async ValueTask EmitAsync(RealtimeServerMessage message)
    {
        if (_channel.Writer.TryWrite(message) || _lifetime.IsCancellationRequested)
        {
            return;
        }

        using var stall = new CancellationTokenSource(_stallTimeout, _time);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(stall.Token, _lifetime);
        try
        {
            await _channel.Writer.WriteAsync(message, waiting.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stall.IsCancellationRequested && !_lifetime.IsCancellationRequested)
        {
            var error = new TimeoutException(
                $"The client read none of the session's messages for {_stallTimeout.TotalSeconds:0.#} s while {_capacity} waited for it; " +
                "the session was closed so that its answers stop and its memory is freed. Read the messages as they come.");
            if (_channel.Writer.TryComplete(error))
            {
                _stalled(error);
            }
        }
        catch (OperationCanceledException)
        {
            // The session is closing.
        }
        catch (ChannelClosedException)
        {
            // The session has closed or failed.
        }
    }

    /// <summary>Ends the stream of messages: the reader gets what is queued, then the end.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>A text or audio message of <paramref name="response"/>'s answer item.</summary>
    public static OutputTextAudioRealtimeServerMessage Output(RealtimeResponse response, RealtimeServerMessageType type, string? text = null, string? audio = null) => new(type)
    {
        ResponseId = response.Id,
        ItemId = response.Answer.Id,
        OutputIndex = 0,
        ContentIndex = 0,
        Text = text,
        Audio = audio,
    };
}
