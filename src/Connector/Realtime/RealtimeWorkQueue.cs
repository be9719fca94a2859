namespace MiniOmni.SK;

/// <summary>
/// A realtime session's engine work (answers, then transcriptions of the turns for later preambles), run one item after
/// another in the order asked. Thread-safe: mostly used under the session's gate, but an answer that ends without its
/// transcript queues the transcription itself.
/// </summary>
internal sealed class RealtimeWorkQueue
{
    private readonly Lock _lock = new();
    private Task _work = Task.CompletedTask;

    /// <summary>
    /// Queues <paramref name="step"/> after all work queued before: it is called at once with the work before it, which it
    /// awaits before its own; a step cancelled while it waits still leaves the queue in order.
    /// </summary>
    public void Enqueue(Func<Task, Task> step)
    {
        lock (_lock)
        {
            var previous = _work;
            _work = Task.WhenAll(previous, step(previous));
        }
    }

    /// <summary>Completes when everything queued so far has ended.</summary>
    public Task Drained
    {
        get
        {
            lock (_lock)
            {
                return _work;
            }
        }
    }
}
