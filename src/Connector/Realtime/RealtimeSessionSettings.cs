using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;

namespace MiniOmni.SK;

/// <summary>A session's MEAI options, checked and read into what the session acts on.</summary>
/// <param name="Options">The options as the client gave them.</param>
/// <param name="Transcribes">A transcription session: committed audio is transcribed, never answered.</param>
/// <param name="Speaks">Answers speak (and carry a transcript) unless the options ask for text alone.</param>
/// <param name="OutputSampleRate">The rate of the audio deltas.</param>
/// <param name="TurnDetection">Server-side voice activity detection, or null when the client commits turns itself.</param>
/// <param name="OutputEncoding">How the audio deltas store their samples: 16-bit PCM, or G.711.</param>
/// <param name="TranscriptionOff">The options turn the transcription of spoken user turns off (<see cref="MiniOmniTranscriptionOptions.Enabled"/>).</param>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed record RealtimeSessionSettings(
    RealtimeSessionOptions Options, bool Transcribes, bool Speaks, int OutputSampleRate, MiniOmniVoiceActivityDetectionOptions? TurnDetection,
    RealtimeSampleEncoding OutputEncoding = RealtimeSampleEncoding.Pcm16, bool TranscriptionOff = false)
{
    /// <summary>Reads <paramref name="options"/>.</summary>
    /// <exception cref="RealtimeRequestException">Something in the options is invalid or beyond Mini-Omni; the message names it.</exception>
    public static RealtimeSessionSettings From(RealtimeSessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Checks the tools and their mode now, so that a required call to a function not offered fails the update, not every answer.
        _ = RealtimeToolOffer.From(options.Tools, options.ToolMode, "the session");

        // Checks the input format now, so that a bad one fails the session update rather than every append after it.
        _ = new RealtimeInputAudio(options.InputAudioFormat);
        MiniOmniVoiceActivityDetectionOptions? turnDetection = null;
        var detection = options.VoiceActivityDetection ?? new MiniOmniVoiceActivityDetectionOptions();
        if (detection.Enabled)
        {
            turnDetection = MiniOmniVoiceActivityDetectionOptions.From(detection);
            try
            {
                _ = new VoiceActivityDetector(turnDetection, WhisperLogMel.SampleRate);
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw Invalid($"The session's voice activity detection is invalid: {e.Message}");
            }
        }

        if (options.MaxOutputTokens is <= 0)
        {
            throw Invalid($"MaxOutputTokens is {options.MaxOutputTokens}; it must be at least 1, or unset to let the answer fill the model's context.");
        }

        var output = OutputFormatOf(options.OutputAudioFormat, "the session's OutputAudioFormat");
        return new RealtimeSessionSettings(
            options,
            options.SessionKind == RealtimeSessionKind.Transcription,
            SpeaksFor(options.OutputModalities, "the session's OutputModalities") ?? true,
            output?.Rate ?? MiniOmniSpeechRate,
            turnDetection,
            output?.Encoding ?? RealtimeSampleEncoding.Pcm16,
            options.TranscriptionOptions is MiniOmniTranscriptionOptions { Enabled: false });
    }

    /// <summary>Whether spoken user turns are transcribed: the client's option, unless the session's options turn it off.</summary>
    public bool TranscribesUserSpeech(MiniOmniRealtimeClientOptions clientOptions) => clientOptions.TranscribeUserSpeech && !TranscriptionOff;

    /// <summary>The rate Mini-Omni speaks at.</summary>
    public const int MiniOmniSpeechRate = 24000;

    /// <summary>Whether <paramref name="modalities"/> ask for speech; null when they say nothing.</summary>
    public static bool? SpeaksFor(IEnumerable<string>? modalities, string source)
    {
        if (modalities is null)
        {
            return null;
        }

        bool audio = false, text = false;
        foreach (string modality in modalities)
        {
            switch (modality?.Trim().ToLowerInvariant())
            {
                case "audio":
                    audio = true;
                    break;
                case "text":
                    text = true;
                    break;
                default:
                    throw Invalid($"The modality '{modality}' in {source} is not one Mini-Omni produces; it answers in \"audio\" (speech with its transcript) or \"text\".");
            }
        }

        // Text alone is the only way to silence the answer; an empty list keeps Mini-Omni's default of speech.
        return audio || !text;
    }

    /// <summary>The sample rate and encoding of the output <paramref name="format"/> asks for: 16-bit PCM at any rate, or G.711 at 8 kHz; null when it is not set.</summary>
    public static (int Rate, RealtimeSampleEncoding Encoding)? OutputFormatOf(RealtimeAudioFormat? format, string source)
    {
        if (format is null)
        {
            return null;
        }

        if (RealtimeG711.EncodingOf(format.MediaType) is { } g711)
        {
            if (format.SampleRate is not (0 or RealtimeG711.SampleRate))
            {
                throw Invalid($"{source} asks for '{format.MediaType}' at {format.SampleRate} Hz; G.711 is 8000 Hz.");
            }

            return (RealtimeG711.SampleRate, g711);
        }

        string[] parts = (format.MediaType ?? string.Empty).Split(';', StringSplitOptions.TrimEntries);
        bool pcm16 = parts[0].Equals("audio/pcm", StringComparison.OrdinalIgnoreCase)
            && parts.Skip(1).All(p => !p.StartsWith("encoding=", StringComparison.OrdinalIgnoreCase) || p.Equals("encoding=s16le", StringComparison.OrdinalIgnoreCase));
        if (!pcm16)
        {
            throw Invalid($"{source} asks for '{format.MediaType}', but Mini-Omni's speech comes out as 16-bit PCM ('audio/pcm', at any rate) or G.711 ('{RealtimeG711.MuLawMediaType}', '{RealtimeG711.ALawMediaType}', 8 kHz).");
        }

        if (format.SampleRate is < 8000 or > 192000)
        {
            throw Invalid($"{source} asks for {format.SampleRate} Hz; speech goes out at 8000 to 192000 Hz (Mini-Omni speaks at {MiniOmniSpeechRate}).");
        }

        return (format.SampleRate, RealtimeSampleEncoding.Pcm16);
    }

    private static RealtimeRequestException Invalid(string message) => new(RealtimeErrorCodes.InvalidSessionOptions, message);
}
