using System.Threading.Channels;

namespace MiniOmni.SK.Engine;

/// <summary>
/// Asks an answer to a spoken question for the question's transcript too (<see cref="MiniOmniRequest.Transcription"/>):
/// the engine encodes the question once, and decodes the release's ASR prompt as a row of its own beside the answer's, in
/// the same steps, sharing the answer's prompt positions (the preamble and the question) instead of decoding them again.
/// The transcript has its own lifetime: the answer can end or be cancelled while it goes on, and it never holds up another
/// answer (it waits while any answer waits for its turn).
/// </summary>
/// <remarks>
/// The ASR prompt follows the answer's preamble, so that the two share their positions: the release transcribes without
/// one. Whether a preamble changes what real weights transcribe is for real weights to show; a separate
/// <see cref="MiniOmniTask.Asr"/> request gives the release's transcript exactly.
/// </remarks>
public sealed class QuestionTranscription
{
    private const int Free = 0, Taken = 1, Abandoned = 2;
    private readonly Channel<MiniOmniEvent> _events = Channel.CreateUnbounded<MiniOmniEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private int _state;

    /// <summary>Creates a transcription of at most <paramref name="maxTokens"/> tokens (0: the engine's default budget), which lives until <paramref name="cancellationToken"/> fires.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxTokens"/> is negative.</exception>
    public QuestionTranscription(int maxTokens = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTokens);
        MaxTokens = maxTokens;
        CancellationToken = cancellationToken;
    }

    /// <summary>The most tokens of the transcript; 0 takes the engine's default budget.</summary>
    public int MaxTokens { get; }

    /// <summary>Stops the transcript (not the answer).</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Whether an engine took the transcription on (it then ends its events, however the answer goes).</summary>
    public bool Started => Volatile.Read(ref _state) == Taken;

    /// <summary>
    /// The transcript as an ASR answer streams it: <see cref="TextDelta"/>s, then an <see cref="AnswerCompleted"/>; the
    /// stream fails with the error if the transcript failed or was cancelled. Read once.
    /// </summary>
    public IAsyncEnumerable<MiniOmniEvent> ReadAllAsync(CancellationToken cancellationToken = default) => _events.Reader.ReadAllAsync(cancellationToken);

    /// <summary>The engine takes the transcription on; false if it was taken or given up before.</summary>
    internal bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Free) == Free;

    /// <summary>The asker gives up a transcription no engine took (its answer never started): its events end with <see cref="QuestionTranscriptionAbandonedException"/>.</summary>
    /// <returns>Whether it was given up (false: an engine has it).</returns>
    internal bool TryAbandon()
    {
        if (Interlocked.CompareExchange(ref _state, Abandoned, Free) != Free)
        {
            return false;
        }

        _events.Writer.TryComplete(new QuestionTranscriptionAbandonedException());
        return true;
    }

    /// <summary>Where the engine writes the transcript's events.</summary>
    internal ChannelWriter<MiniOmniEvent> Writer => _events.Writer;
}

/// <summary>A <see cref="QuestionTranscription"/> no engine took: its answer never started, so the question was not transcribed beside it.</summary>
public sealed class QuestionTranscriptionAbandonedException() : InvalidOperationException("The question's answer never started, so no transcript was decoded beside it.");
