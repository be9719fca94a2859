using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Audio;

namespace MiniOmni.SK;

/// <summary>What a realtime session does when its input audio starts a turn or becomes one.</summary>
internal interface IRealtimeTurnHandler
{
    /// <summary>The detector heard speech start (its message is out): a barge-in, if the session allows them.</summary>
    Task SpeechStartedAsync();

    /// <summary><paramref name="entry"/> was committed as a user turn (its messages are out); <paramref name="respond"/> asks for an answer.</summary>
    Task TurnCommittedAsync(ConversationEntry entry, bool respond);
}

/// <summary>
/// A realtime session's input: appended audio converted to 16 kHz, kept until it becomes a turn, watched (with turn
/// detection on) by a <see cref="VoiceActivityDetector"/>; a turn is committed by the client or by the end of speech.
/// Used under the session's gate.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeTurnTaker
{
    /// <summary>The rate Whisper hears, and the rate of every sample kept here.</summary>
    public const int InputRate = WhisperLogMel.SampleRate;

    /// <summary>The most audio of one turn: Mini-Omni hears at most 30 s.</summary>
    public const int MaximumTurnSamples = WhisperLogMel.WindowSampleCount;

    private const int MinimumTurnSamples = InputRate / 10;

    private readonly RealtimeSessionContext _session;
    private readonly IRealtimeTurnHandler _handler;
    private readonly InputBuffer _buffer = new();
    private readonly List<VoiceActivityEvent> _changes = [];
    private RealtimeInputAudio _input;
    private VoiceActivityDetector? _detector;
    private long _detectorOrigin;
    private long _turnStart;
    private string? _speechItemId;
    private bool _overflowReported;
    private EncodedAhead? _ahead;

    public RealtimeTurnTaker(RealtimeSessionContext session, IRealtimeTurnHandler handler)
    {
        _session = session;
        _handler = handler;
        _input = new RealtimeInputAudio(session.Settings.Options.InputAudioFormat);
        _detector = session.Settings.TurnDetection is { } detection ? new VoiceActivityDetector(detection, InputRate) : null;
    }

    /// <summary>Whether audio waits uncommitted with no detector to commit it (a response request then commits it first).</summary>
    public bool HoldsAudioWithoutDetection => _detector is null && _buffer.Count > 0;

    /// <summary>Takes an appended piece of audio: converts it, keeps it, and lets the detector start and end turns in it.</summary>
    public async Task AppendAsync(InputAudioBufferAppendRealtimeClientMessage append)
    {
        var content = append.Content ?? throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, "The append message carries no audio content.");
        float[] samples = _input.Append(content);
        _buffer.Append(samples);
        if (_detector is null)
        {
            KeepWithinOneTurn();
            return;
        }

        _changes.Clear();
        _detector.Process(samples, _changes);
        foreach (var change in _changes)
        {
            if (change.Kind == VoiceActivityKind.SpeechStarted)
            {
                await SpeechStartedAsync(change).ConfigureAwait(false);
            }
            else
            {
                await SpeechStoppedAsync(change).ConfigureAwait(false);
            }
        }

        var detection = _session.Settings.TurnDetection!;
        if (_detector.IsSpeaking && _detector.Pause is { } pause)
        {
            EncodeAhead(pause, detection);
        }

        if (_detector.IsSpeaking)
        {
            // Mini-Omni hears at most 30 s: a longer turn is answered in 30 s parts.
            while (_buffer.End - _turnStart >= MaximumTurnSamples)
            {
                _session.Logger.LogInformation("Realtime session {Session}: speech ran past 30 s; committing the first 30 s as a turn of its own.", _session.IdPrefix);
                long end = _turnStart + MaximumTurnSamples;
                await CommitTurnAsync(_turnStart, end, _speechItemId!, detection.CreateResponse, fromDetector: true).ConfigureAwait(false);
                _turnStart = end;
                _speechItemId = _session.NewId("item");
            }
        }
        else
        {
            // Between turns only the prefix padding is kept, and enough for a start still being confirmed.
            var kept = detection.PrefixPadding + detection.MinimumSpeechDuration + VoiceActivityDetector.FrameDuration * 2;
            _buffer.DropBefore(_buffer.End - ToSamples(kept));
        }
    }

    /// <summary>Commits the audio kept (from the start of the speech in progress, if any) as a user turn.</summary>
    public async Task CommitBufferAsync(bool respond)
    {
        string itemId = _detector?.IsSpeaking == true && _speechItemId is not null ? _speechItemId : _session.NewId("item");
        long start = _detector?.IsSpeaking == true ? Math.Min(_turnStart, _buffer.End) : _buffer.Start;
        await CommitTurnAsync(Math.Max(start, _buffer.Start), _buffer.End, itemId, respond, fromDetector: false).ConfigureAwait(false);
        _detector?.Reset();
        _speechItemId = null;
    }

    /// <summary>Drops the audio not yet committed (a turn in progress included), and says so.</summary>
    public async Task ClearAsync()
    {
        _buffer.DropBefore(_buffer.End);
        _detector?.Reset();
        _speechItemId = null;
        _overflowReported = false;
        await _session.EmitAsync(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputAudioCleared) { AudioPosition = ToTime(_buffer.End) }).ConfigureAwait(false);
    }

    /// <summary>Follows a session update: a new input format starts a new input stream, new detection settings a new detector.</summary>
    public void Update(RealtimeSessionSettings previous, RealtimeSessionSettings settings)
    {
        var before = previous.Options.InputAudioFormat;
        var after = settings.Options.InputAudioFormat;
        if (before?.MediaType != after?.MediaType || before?.SampleRate != after?.SampleRate)
        {
            _input = new RealtimeInputAudio(after);
        }

        if (!SameDetection(previous.TurnDetection, settings.TurnDetection))
        {
            // The new detector starts listening here; a turn in progress is left to the client to commit.
            _detector = settings.TurnDetection is { } detection ? new VoiceActivityDetector(detection, InputRate) : null;
            _detectorOrigin = _buffer.End;
            _speechItemId = null;
        }
    }

    // The speaker paused: the turn so far is encoded now, before the silence confirms its end. If no more speech comes,
    // the turn is committed as it was at the pause (the rest is silence), so its answer takes that encoding; if speech
    // resumes, the encoding is dropped unused.
    private void EncodeAhead(SpeechPause pause, MiniOmniVoiceActivityDetectionOptions detection)
    {
        long speechEnd = _detectorOrigin + pause.SpeechEnd, end = _detectorOrigin + pause.DetectedAt;
        if (_ahead is { } done && done.TurnStart == _turnStart && done.SpeechEnd == speechEnd
            || !detection.CreateResponse || _session.Settings.Transcribes || _session.Engine is not Engine.IEncodeAhead engine
            || end - _turnStart is < MinimumTurnSamples or > MaximumTurnSamples)
        {
            return;
        }

        _ahead = new EncodedAhead(_turnStart, speechEnd, end);
        engine.EncodeAhead(_buffer.Slice(_turnStart, end), _session.ClientOptions.EncoderMode);
    }

    private async Task SpeechStartedAsync(VoiceActivityEvent change)
    {
        _ahead = null;
        _speechItemId = _session.NewId("item");
        _turnStart = Math.Max(_buffer.Start, _detectorOrigin + change.TurnStart);
        await _session.EmitAsync(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputSpeechStarted)
        {
            ItemId = _speechItemId,
            AudioPosition = ToTime(_detectorOrigin + change.SpeechPosition),
        }).ConfigureAwait(false);
        await _handler.SpeechStartedAsync().ConfigureAwait(false);
    }

    private async Task SpeechStoppedAsync(VoiceActivityEvent change)
    {
        string itemId = _speechItemId ?? _session.NewId("item");
        _speechItemId = null;
        await _session.EmitAsync(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputSpeechStopped)
        {
            ItemId = itemId,
            AudioPosition = ToTime(_detectorOrigin + change.SpeechPosition),
        }).ConfigureAwait(false);
        // Encoded ahead at a pause with no speech since: the turn ends where it was encoded.
        long end = _ahead is { } ahead && ahead.TurnStart == _turnStart && ahead.SpeechEnd == _detectorOrigin + change.SpeechPosition ? ahead.End : _detectorOrigin + change.DetectedAt;
        _ahead = null;
        await CommitTurnAsync(_turnStart, end, itemId, _session.Settings.TurnDetection!.CreateResponse, fromDetector: true).ConfigureAwait(false);
    }

    // A turn encoded ahead: from its start to End, its speech having ended at SpeechEnd (session sample positions).
    private sealed record EncodedAhead(long TurnStart, long SpeechEnd, long End);

    private async Task CommitTurnAsync(long start, long end, string itemId, bool respond, bool fromDetector)
    {
        float[] audio = _buffer.Slice(start, end);
        if (audio.Length < MinimumTurnSamples)
        {
            if (fromDetector)
            {
                _session.Logger.LogDebug("Realtime session {Session}: a detected turn of {Samples} samples is too short to answer; dropped.", _session.IdPrefix, audio.Length);
                return;
            }

            throw new RealtimeRequestException(
                RealtimeErrorCodes.EmptyInputAudioBuffer,
                $"The input audio buffer holds {audio.Length * 1000 / InputRate} ms of audio; committing a turn needs at least {MinimumTurnSamples * 1000 / InputRate} ms.");
        }

        _buffer.DropBefore(end);
        _overflowReported = false;
        var entry = new ConversationEntry(itemId, ChatRole.User) { Audio = audio };
        _session.Conversation.Add(entry);
        _session.Logger.LogDebug("Realtime session {Session}: committed {Item}, {Seconds:F2} s of speech.", _session.IdPrefix, itemId, audio.Length / (double)InputRate);
        string? previousItemId = _session.Conversation.PreviousId(entry);
        await _session.EmitAsync(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputAudioCommitted) { ItemId = itemId, PreviousItemId = previousItemId, AudioPosition = ToTime(end) }).ConfigureAwait(false);
        await _session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ConversationItemAdded)
        {
            Item = new RealtimeConversationItem([new DataContent(ToWav(audio), MiniOmniMediaTypes.Wav)], itemId, ChatRole.User)
            {
                RawRepresentation = new MiniOmniRealtimeItemDetails(entry.Status, previousItemId),
            },
        }).ConfigureAwait(false);
        await _handler.TurnCommittedAsync(entry, respond).ConfigureAwait(false);
    }

    private void KeepWithinOneTurn()
    {
        if (_buffer.Count <= MaximumTurnSamples)
        {
            return;
        }

        _buffer.DropBefore(_buffer.End - MaximumTurnSamples);
        if (!_overflowReported)
        {
            _overflowReported = true;
            _session.Logger.LogWarning("Realtime session {Session}: over 30 s of audio appended without a commit; Mini-Omni hears at most 30 s, so the oldest is dropped.", _session.IdPrefix);
        }
    }

    private static bool SameDetection(MiniOmniVoiceActivityDetectionOptions? a, MiniOmniVoiceActivityDetectionOptions? b) =>
        a is null || b is null ? a is null && b is null :
        a.ThresholdDb == b.ThresholdDb && a.HysteresisDb == b.HysteresisDb && a.MinimumSpeechDuration == b.MinimumSpeechDuration &&
        a.SilenceDuration == b.SilenceDuration && a.PrefixPadding == b.PrefixPadding;

    private static TimeSpan ToTime(long samples) => TimeSpan.FromTicks(samples * TimeSpan.TicksPerSecond / InputRate);

    private static long ToSamples(TimeSpan duration) => (long)Math.Round(duration.TotalSeconds * InputRate);

    private static byte[] ToWav(float[] samples)
    {
        using var wav = new MemoryStream();
        Pcm16Wave.Write(wav, samples, InputRate);
        return wav.ToArray();
    }

    /// <summary>The input audio not yet committed, at 16 kHz, addressed by position from the session's first sample.</summary>
    private sealed class InputBuffer
    {
        private float[] _samples = new float[InputRate];

        /// <summary>The position of the oldest sample kept.</summary>
        public long Start { get; private set; }

        /// <summary>Samples kept.</summary>
        public int Count { get; private set; }

        /// <summary>The position after the newest sample.</summary>
        public long End => Start + Count;

        public void Append(ReadOnlySpan<float> samples)
        {
            if (Count + samples.Length > _samples.Length)
            {
                Array.Resize(ref _samples, Math.Max(_samples.Length * 2, Count + samples.Length));
            }

            samples.CopyTo(_samples.AsSpan(Count));
            Count += samples.Length;
        }

        /// <summary>The samples from <paramref name="from"/> to <paramref name="to"/>, as far as they are kept.</summary>
        public float[] Slice(long from, long to)
        {
            from = Math.Clamp(from, Start, End);
            to = Math.Clamp(to, from, End);
            return _samples.AsSpan((int)(from - Start), (int)(to - from)).ToArray();
        }

        /// <summary>Forgets the samples before <paramref name="position"/>.</summary>
        public void DropBefore(long position)
        {
            int drop = (int)Math.Clamp(position - Start, 0, Count);
            if (drop == 0)
            {
                return;
            }

            _samples.AsSpan(drop, Count - drop).CopyTo(_samples);
            Count -= drop;
            Start += drop;
        }
    }
}
