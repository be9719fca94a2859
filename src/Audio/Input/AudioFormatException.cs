namespace MiniOmni.SK.Audio;

/// <summary>What was wrong with an audio input that could not be decoded.</summary>
public enum AudioInputProblem
{
    /// <summary>The input holds no bytes at all.</summary>
    Empty,

    /// <summary>The container header is cut short or does not parse.</summary>
    CorruptHeader,

    /// <summary>The header parses but the audio data ends before the header says it should.</summary>
    Truncated,

    /// <summary>The container or encoding is not one this decoder reads (PCM/IEEE float WAV, MP3, and Opus in Ogg or WebM are).</summary>
    UnsupportedFormat,

    /// <summary>The input decodes to zero samples.</summary>
    NoSamples,

    /// <summary>A decoded sample is NaN or infinite.</summary>
    InvalidSamples,

    /// <summary>The audio is longer than the 30 s window Whisper sees and truncation was not asked for.</summary>
    TooLong,

    /// <summary>The header parses but the coded audio after it does not decode (a damaged frame, packet or block).</summary>
    CorruptData,

    /// <summary>The input is larger than <see cref="AudioInputOptions.MaxInputBytes"/> allows, or a size inside it is beyond what this decoder accepts.</summary>
    InputTooLarge,
}

/// <summary>Thrown when an audio input cannot be turned into 16 kHz mono samples; the message names the input and the problem.</summary>
public sealed class AudioFormatException : Exception
{
    /// <summary>Creates the exception for the named input.</summary>
    public AudioFormatException(string inputName, AudioInputProblem problem, string detail, Exception? innerException = null)
        : base($"Audio input '{inputName}': {detail}", innerException)
    {
        InputName = inputName;
        Problem = problem;
    }

    /// <summary>The file path, or a description of the stream or buffer, that failed to decode.</summary>
    public string InputName { get; }

    /// <summary>The kind of problem, for callers that react differently to each.</summary>
    public AudioInputProblem Problem { get; }

    /// <summary>
    /// Where in the input the fault lies, in bytes from its start, when the format has a place to point at (a chunk, a page,
    /// an element, a frame or packet); null for a fault of the whole input (empty, too long, no samples, not a known format).
    /// </summary>
    public long? ByteOffset { get; init; }
}
