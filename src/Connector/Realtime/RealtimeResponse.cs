namespace MiniOmni.SK;

/// <summary>
/// One answer of a realtime session: what it answers and how, and what it has said so far, so that an interruption can
/// tell what the user heard. Written by the answer's task, read by the session's input handling; thread-safe.
/// </summary>
internal sealed class RealtimeResponse
{
    private readonly CancellationTokenSource _cancellation;
    private readonly Lock _lock = new();
    private DateTimeOffset? _firstAudioAt;
    private volatile bool _finished;

    public RealtimeResponse(string id, ConversationEntry question, ConversationEntry answer, RealtimeConversation conversation, ResponsePlan plan, CancellationToken sessionLifetime)
    {
        Id = id;
        Question = question;
        Answer = answer;
        Conversation = conversation;
        Plan = plan;
        Speech = new RealtimeSpokenAnswer(plan.OutputSampleRate);
        answer.Speech = plan.Speaks ? Speech : null;
        _cancellation = CancellationTokenSource.CreateLinkedTokenSource(sessionLifetime);
    }

    /// <summary>The response's id.</summary>
    public string Id { get; }

    /// <summary>The user turn it answers.</summary>
    public ConversationEntry Question { get; }

    /// <summary>Its assistant turn (in <see cref="Conversation"/> unless the answer is kept out of it).</summary>
    public ConversationEntry Answer { get; }

    /// <summary>The turns its preamble is rendered from.</summary>
    public RealtimeConversation Conversation { get; }

    /// <summary>How it answers.</summary>
    public ResponsePlan Plan { get; }

    /// <summary>What the answer has said so far, and when.</summary>
    public RealtimeSpokenAnswer Speech { get; }

    /// <summary>Why the answer was cancelled, if it was: one of <see cref="MiniOmniRealtimeStatusReasons"/>.</summary>
    public string? CancelReason { get; private set; }

    /// <summary>Cancelled when the answer is interrupted or the session ends.</summary>
    public CancellationToken Token => _cancellation.Token;

    /// <summary>Completes once the answer's last message (its response-done) is out; never faults.</summary>
    public Task Completion { get; set; } = Task.CompletedTask;

    /// <summary>Whether the answer began (its output item was announced).</summary>
    public bool Started { get; set; }

    /// <summary>Whether the answer has ended, however it ended.</summary>
    public bool Finished => _finished;

    /// <summary>The text so far.</summary>
    public string Text => Speech.Text;

    /// <summary>The speech so far, at the output rate.</summary>
    public TimeSpan AudioDuration => Speech.AudioDuration;

    /// <summary>Stops the answer, for <paramref name="reason"/> (one of <see cref="MiniOmniRealtimeStatusReasons"/>); an answer that has ended is left as it is.</summary>
    public void Cancel(string reason)
    {
        if (_finished)
        {
            return;
        }

        lock (_lock)
        {
            CancelReason ??= reason;
        }

        try
        {
            _cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // It ended between the check and the cancel.
        }
    }

    /// <summary>Records new text.</summary>
    public void AddText(string text) => Speech.AddText(text);

    /// <summary>Records <paramref name="samples"/> more speech sent at <paramref name="sentAt"/>.</summary>
    public void AddAudio(int samples, DateTimeOffset sentAt)
    {
        lock (_lock)
        {
            _firstAudioAt ??= sentAt;
            Speech.AddAudio(samples);
        }
    }

    /// <summary>Marks the answer as ended and lets go of its cancellation.</summary>
    public void Finish()
    {
        _finished = true;
        _cancellation.Dispose();
    }

    /// <summary>How much of the speech has played by <paramref name="now"/>, taking playback to start with the first audio sent and run in real time.</summary>
    public TimeSpan Heard(DateTimeOffset now)
    {
        lock (_lock)
        {
            if (_firstAudioAt is not { } first)
            {
                return TimeSpan.Zero;
            }

            var played = now - first;
            var total = Speech.AudioDuration;
            return played < TimeSpan.Zero ? TimeSpan.Zero : played > total ? total : played;
        }
    }

    /// <summary>Whether the answer is over for the user by <paramref name="now"/>: generated, and (when it speaks) played to its end.</summary>
    public bool IsOver(DateTimeOffset now) => _finished && (!Plan.Speaks || Heard(now) >= AudioDuration);

    /// <summary>The part of the text the user heard when <paramref name="heard"/> of the speech had played (see <see cref="RealtimeSpokenAnswer.HeardText"/>).</summary>
    public string HeardText(TimeSpan heard) => Speech.HeardText(heard);
}

/// <summary>How one response answers: which modalities, instructions, budget, output rate and sample encoding.</summary>
/// <param name="Speaks">Speech and its transcript out (A1A2, T1A2), or text only (A1T2, T1T2).</param>
/// <param name="Instructions">The system instructions ahead of the turns.</param>
/// <param name="MaxTokens">The most steps; 0 lets the engine fill the context.</param>
/// <param name="OutputSampleRate">The rate of the audio deltas.</param>
/// <param name="OutputEncoding">How the audio deltas' samples are stored: 16-bit PCM, or G.711 at 8 kHz.</param>
internal sealed record ResponsePlan(bool Speaks, string? Instructions, int MaxTokens, int OutputSampleRate, RealtimeSampleEncoding OutputEncoding = RealtimeSampleEncoding.Pcm16)
{
    /// <summary>The tools offered to the model (none by default).</summary>
    public RealtimeToolOffer Tools { get; init; } = RealtimeToolOffer.None;

    /// <summary>Whether the answer goes on after function results: its preamble ends with the calls and results after the question.</summary>
    public bool AfterToolResults { get; init; }
}
