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

    /// <summary>Decodes <paramref name="bytes"/> of <paramref name="mediaType"/> (null: recognized by content) to 16 kHz mono.</summary>
    /// <exception cref="AudioFormatException">The audio cannot be decoded; the message names the input and the problem.</exception>
    /// <exception cref="ApiRequestException">The audio is longer than the server allows (413).</exception>
    public static float[] Decode(ReadOnlyMemory<byte> bytes, string? mediaType, string inputName, ServerLimits limits, string param)
    {
        float[] samples = AudioDecoder.Decode(bytes, mediaType, AudioInputOptions.Default, inputName);
        double seconds = samples.Length / (double)WhisperLogMel.SampleRate;
        if (seconds > limits.MaxAudioSeconds)
        {
            throw ApiRequestException.TooLarge(
                $"{inputName} is {seconds:F1} s long; this server takes questions of at most {limits.MaxAudioSeconds:0.#} s (MiniOmni:Limits:MaxAudioSeconds).", param, "audio_too_long");
        }

        return samples;
    }

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
