namespace MiniOmni.SK.Audio;

/// <summary>How <see cref="AudioDecoder"/> treats inputs that do not fit Whisper's 30 s window, and how much it reads.</summary>
public sealed record AudioInputOptions
{
    /// <summary>The default for <see cref="MaxInputBytes"/>: 64 MiB, more than 30 s of 8-channel 48 kHz float audio.</summary>
    public const long DefaultMaxInputBytes = 64L * 1024 * 1024;

    /// <summary>The defaults: audio over 30 s is an error, a forward-only stream may hold at most 64 MiB.</summary>
    public static AudioInputOptions Default { get; } = new();

    /// <summary>Keep only the first 30 s of longer audio instead of failing; Whisper never sees past 30 s anyway.</summary>
    public bool TruncateToWindow { get; init; }

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
