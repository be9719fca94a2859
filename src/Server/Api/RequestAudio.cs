using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Server.Hosting;
using NAudio.Wave;

namespace MiniOmni.SK.Server.Api;

/// <summary>
/// Audio a request carries: decoded by <see cref="AudioDecoder"/> (WAV, MP3, and the WebM and Ogg Opus recordings
/// browsers make, by their media type), held to <see cref="ServerLimits.MaxAudioSeconds"/>, and handed to the clients as
/// a 16 kHz float WAV, which they read back exactly.
/// </summary>
internal static class RequestAudio
{
    /// <summary>The media type of an OpenAI <c>input_audio.format</c> (or a file's extension).</summary>
    public static string? MediaTypeOf(string? format) => format?.Trim().TrimStart('.').ToLowerInvariant() switch
    {
        "wav" or "wave" => "audio/wav",
        "mp3" or "mpeg" => "audio/mpeg",
        "webm" => "audio/webm",
        "ogg" or "oga" or "opus" => "audio/ogg",
        _ => null,
    };

    /// <summary>Decodes a question's audio (<paramref name="mediaType"/>, null: recognized by content) to 16 kHz mono: what Mini-Omni hears at once.</summary>
    /// <exception cref="AudioFormatException">The audio cannot be decoded; the message names the input and the problem.</exception>
    /// <exception cref="ApiRequestException">The audio is longer than Mini-Omni hears or the server allows (400, naming the limit).</exception>
    public static float[] DecodeQuestion(ReadOnlyMemory<byte> bytes, string? mediaType, string inputName, ServerLimits limits, string param)
    {
        float[] samples;
        try
        {
            samples = AudioDecoder.Decode(bytes, mediaType, AudioInputOptions.Default, inputName);
        }
        catch (AudioFormatException e) when (e.Problem == AudioInputProblem.TooLong)
        {
            throw TooLongQuestion(inputName, "over 30", limits, param);
        }

        double seconds = samples.Length / (double)WhisperLogMel.SampleRate;
        if (seconds > limits.MaxAudioSeconds)
        {
            throw TooLongQuestion(inputName, seconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), limits, param);
        }

        return samples;
    }

    /// <summary>Decodes a recording to transcribe, of any length up to <see cref="ServerLimits.MaxTranscriptionSeconds"/> (over it: 413).</summary>
    public static float[] DecodeRecording(ReadOnlyMemory<byte> bytes, string? mediaType, string inputName, ServerLimits limits, string param)
    {
        try
        {
            return AudioDecoder.Decode(bytes, mediaType, new AudioInputOptions { MaxDuration = TimeSpan.FromSeconds(limits.MaxTranscriptionSeconds) }, inputName);
        }
        catch (AudioFormatException e) when (e.Problem == AudioInputProblem.TooLong)
        {
            throw ApiRequestException.TooLarge(
                $"{inputName} is longer than this server transcribes: at most {limits.MaxTranscriptionSeconds:0.#} s (MiniOmni:Limits:MaxTranscriptionSeconds).", param, "audio_too_long");
        }
    }

    private static ApiRequestException TooLongQuestion(string inputName, string seconds, ServerLimits limits, string param) => ApiRequestException.Invalid(
        $"{inputName} is {seconds} s long; Mini-Omni hears a question of at most 30 s, and this server takes at most {limits.MaxAudioSeconds:0.#} s " +
        "(MiniOmni:Limits:MaxAudioSeconds). Transcribe longer recordings with /v1/audio/transcriptions, which cuts them into windows.", param, "audio_too_long");

    /// <summary>16 kHz samples as a 32-bit float WAV: what the clients decode back to the same samples.</summary>
    public static DataContent ToWav(float[] samples, string name)
    {
        using var buffer = new MemoryStream();
        using (var writer = new WaveFileWriter(buffer, WaveFormat.CreateIeeeFloatWaveFormat(WhisperLogMel.SampleRate, 1)))
        {
            writer.WriteSamples(samples, 0, samples.Length);
        }

        return new DataContent(buffer.ToArray(), "audio/wav") { Name = name };
    }
}
