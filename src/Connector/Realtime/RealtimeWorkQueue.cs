namespace MiniOmni.SK;

/// <summary>
/// A realtime session's engine work (answers, then transcriptions of the turns for later preambles), run one item after
/// another in the order asked. Used under the session's gate.
/// </summary>
internal sealed class RealtimeWorkQueue
{
    private Task _work = Task.CompletedTask;

    /// <summary>
    /// Queues <paramref name="step"/> after all work queued before: it is called at once with the work before it, which it
    /// awaits before its own; a step cancelled while it waits still leaves the queue in order.
    /// </summary>
    public void Enqueue(Func<Task, Task> step)
    {
        var previous = _work;
        _work = Task.WhenAll(previous, step(previous));
    }

    /// <summary>Completes when everything queued so far has ended.</summary>
    public Task Drained => _work;
}
