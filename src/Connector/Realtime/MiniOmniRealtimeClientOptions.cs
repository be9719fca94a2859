using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK;

/// <summary>How a <see cref="MiniOmniRealtimeClient"/>'s sessions use the engine, beyond what MEAI's session options say.</summary>
public sealed record MiniOmniRealtimeClientOptions
{
    /// <summary>How each answer's tokens are picked; the default is greedy, as the release.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>How spoken turns are encoded: <see cref="EncoderMode.Exact"/> (Whisper's whole 30 s window, as the release) or the faster <see cref="EncoderMode.Fast"/>.</summary>
    public EncoderMode EncoderMode { get; init; } = EncoderMode.Exact;

    /// <summary>Answer speech with the release's batch-parallel mode (a text-only row beside the speaking one).</summary>
    public bool BatchParallel { get; init; }

    /// <summary>
    /// Transcribe each spoken user turn with Mini-Omni's ASR task after it is answered, so later turns see it as text in
    /// their preamble and the client gets input transcription messages. Without it, spoken turns show as "[speech]".
    /// </summary>
    public bool TranscribeUserSpeech { get; init; } = true;

    /// <summary>The most tokens of one user-turn transcription.</summary>
    public int TranscriptionMaxTokens { get; init; } = 256;

    /// <summary>
    /// Characters of earlier turns rendered into an answer's preamble; the oldest turns are left out first. Around four
    /// characters make a token, so the default of 2000 costs some 500 positions of the model's 2048.
    /// </summary>
    public int HistoryCharacterBudget { get; init; } = 2000;

    /// <summary>
    /// Decode each next turn's preamble (the instructions and the conversation so far) into the engine's prompt cache as
    /// soon as the conversation changes between answers, while the user is still speaking: the next answer then decodes
    /// only its question, and its first audio does not grow with the history. It yields to every answer. The default is on.
    /// </summary>
    public bool PrefillHistoryAhead { get; init; } = true;

    /// <summary>
    /// A thinker: the chat client (any model, an agent's) that writes each answer. Mini-Omni transcribes the spoken turn,
    /// the thinker answers the session's conversation (its instructions as the system message), and Mini-Omni speaks the
    /// thinker's text while it streams. A barge-in or a cancelled response cancels the thinker's request; a thinker that
    /// fails fails the response with an error naming its endpoint and status, and the session goes on. Null (the default):
    /// Mini-Omni answers itself.
    /// </summary>
    public Microsoft.Extensions.AI.IChatClient? Thinker { get; init; }

    /// <summary>The clock that times playback, to tell what of an interrupted answer the user heard.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// The most messages a session keeps for its client to read. While the queue is full the session's answer waits for the
    /// client (backpressure), so memory stays bounded however slowly it reads.
    /// </summary>
    public int OutboundCapacity { get; init; } = 128;

    /// <summary>
    /// How long a full queue may go unread before the session ends: its answers stop, and its reader gets the messages
    /// already queued, then a <see cref="TimeoutException"/> that says why.
    /// </summary>
    public TimeSpan OutboundStallTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Checks the values, naming the one that is out of range.</summary>
    internal MiniOmniRealtimeClientOptions Validate()
    {
        ArgumentNullException.ThrowIfNull(Sampling);
        ArgumentNullException.ThrowIfNull(TimeProvider);
        Sampling.Validate();
        if (TranscriptionMaxTokens <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TranscriptionMaxTokens), TranscriptionMaxTokens, "A transcription needs at least one token.");
        }

        if (HistoryCharacterBudget < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(HistoryCharacterBudget), HistoryCharacterBudget, "The history budget cannot be negative; 0 leaves earlier turns out.");
        }

        if (OutboundCapacity < 16)
        {
            throw new ArgumentOutOfRangeException(nameof(OutboundCapacity), OutboundCapacity, "A session needs room for at least 16 messages (one answer's start and end take a handful).");
        }

        if (OutboundStallTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(OutboundStallTimeout), OutboundStallTimeout, "The stall timeout must be longer than 0.");
        }

        return this;
    }
}
