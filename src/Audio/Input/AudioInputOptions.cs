namespace MiniOmni.SK.Audio;

/// <summary>How <see cref="AudioDecoder"/> treats inputs that do not fit Whisper's 30 s window, and how much it reads.</summary>
public sealed record AudioInputOptions
{
    /// <summary>The default for <see cref="MaxInputBytes"/>: 64 MiB, more than 30 s of 8-channel 48 kHz float audio.</summary>
    public const long DefaultMaxInputBytes = 64L * 1024 * 1024;

    /// <summary>The defaults: audio over 30 s is an error, a forward-only stream may hold at most 64 MiB.</summary>
    public static AudioInputOptions Default { get; } = new();

    /// <summary>The longest <see cref="MaxDuration"/>: 4 hours (920 MB of 16 kHz float samples).</summary>
    public static readonly TimeSpan LongestAudio = TimeSpan.FromHours(4);

    /// <summary>Keep only the first <see cref="MaxDuration"/> (by default 30 s) of longer audio instead of failing.</summary>
    public bool TruncateToWindow { get; init; }

    /// <summary>
    /// The longest audio decoded; longer is an error (or cut, with <see cref="TruncateToWindow"/>). Null: Whisper's 30 s
    /// window, what Mini-Omni hears at once. Longer audio is for callers that cut it into windows themselves
    /// (<see cref="SpeechWindows"/>); at most <see cref="LongestAudio"/>.
    /// </summary>
    public TimeSpan? MaxDuration
    {
        get => _maxDuration;
        init
        {
            if (value is { } duration && (duration <= TimeSpan.Zero || duration > LongestAudio))
            {
                throw new ArgumentOutOfRangeException(nameof(value), duration, $"MaxDuration must be over 0 and at most {LongestAudio.TotalHours} h.");
            }

            _maxDuration = value;
        }
    }

    /// <summary>The most 16 kHz samples decoded.</summary>
    internal int MaxSamples => _maxDuration is { } duration ? (int)Math.Ceiling(duration.TotalSeconds * WhisperLogMel.SampleRate) : WhisperLogMel.WindowSampleCount;

    private readonly TimeSpan? _maxDuration;

    /// <summary>
    /// The most bytes read from a stream that cannot seek (it is buffered before decoding, as the containers need
    /// seeking); a longer one fails with <see cref="AudioInputProblem.InputTooLarge"/> as soon as it passes the limit.
    /// </summary>
    public long MaxInputBytes
    {
        get => _maxInputBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1L);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, (long)Array.MaxLength);
            _maxInputBytes = value;
        }
    }

    private readonly long _maxInputBytes = DefaultMaxInputBytes;
}
