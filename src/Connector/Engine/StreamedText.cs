namespace MiniOmni.SK.Engine;

/// <summary>
/// An answer's text as it is written (a thinker's stream), token by token as each becomes final: the read-aloud answer
/// forces them onto its text stream one per step, and its row waits (is left out of the decodes) while the next one has not
/// come. Written by the engine's pump, read by the decode loop; <see cref="Changed"/> wakes the loop when something arrives.
/// </summary>
internal sealed class StreamedText
{
    private readonly object _gate = new();
    private readonly List<int> _tokens = [];
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _ended;

    /// <summary>Called (on the writer's thread) after tokens arrived or the text ended.</summary>
    public Action? Changed { get; set; }

    /// <summary>Completes when the first token has come or the text has ended.</summary>
    public Task Started => _started.Task;

    /// <summary>Tokens received so far.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _tokens.Count;
            }
        }
    }

    /// <summary>Whether the text has ended (its writer finished or failed).</summary>
    public bool Ended
    {
        get
        {
            lock (_gate)
            {
                return _ended;
            }
        }
    }

    /// <summary>The text failed (its writer's error), or null.</summary>
    public Exception? Error { get; private set; }

    /// <summary>
    /// The token at <paramref name="index"/>: true with it when it has come; false with <paramref name="ended"/> telling
    /// whether the text ended before it (else it is still to come).
    /// </summary>
    public bool TryGet(int index, out int token, out bool ended)
    {
        lock (_gate)
        {
            ended = _ended;
            if (index < _tokens.Count)
            {
                token = _tokens[index];
                return true;
            }

            token = 0;
            return false;
        }
    }

    /// <summary>Adds final tokens.</summary>
    public void Append(IReadOnlyCollection<int> tokens)
    {
        if (tokens.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_ended)
            {
                throw new InvalidOperationException("The streamed text has already ended.");
            }

            _tokens.AddRange(tokens);
        }

        _started.TrySetResult();
        Changed?.Invoke();
    }

    /// <summary>Ends the text: after the last token the answer's text ends (EOT), and it goes on speaking.</summary>
    public void End(Exception? error = null)
    {
        lock (_gate)
        {
            if (_ended)
            {
                return;
            }

            _ended = true;
            Error = error;
        }

        _started.TrySetResult();
        Changed?.Invoke();
    }
}
