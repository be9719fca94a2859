namespace MiniOmni.SK.Audio;

/// <summary>How <see cref="AudioDecoder"/> treats inputs that do not fit Whisper's 30 s window.</summary>
public sealed record AudioInputOptions
{
    /// <summary>The defaults: audio over 30 s is an error.</summary>
    public static AudioInputOptions Default { get; } = new();

    /// <summary>Keep only the first 30 s of longer audio instead of failing; Whisper never sees past 30 s anyway.</summary>
    public bool TruncateToWindow { get; init; }
}
