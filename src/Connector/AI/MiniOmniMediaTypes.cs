using MiniOmni.SK.Audio;

namespace MiniOmni.SK;

/// <summary>The media types MiniOmni.SK reads and writes.</summary>
public static class MiniOmniMediaTypes
{

    /// <summary>A streamed speech chunk: raw 16-bit little-endian mono PCM at Mini-Omni's 24 kHz.</summary>
    public const string SpeechChunk = "audio/pcm;rate=24000;channels=1;encoding=s16le";

    /// <summary>A whole spoken answer: a 24 kHz 16-bit mono WAV file.</summary>
    public const string Wav = "audio/wav";

    /// <summary>An MP3 question.</summary>
    public const string Mpeg = "audio/mpeg";

    /// <summary>What <see cref="IsReadableAudio"/> accepts, for messages.</summary>
    public const string ReadableAudioDescription = "WAV, MP3, or Opus in Ogg or WebM (what browsers record)";

    /// <summary>Whether <paramref name="mediaType"/> is audio MiniOmni.SK can hear: every container <see cref="AudioDecoder"/> reads, at any rate.</summary>
    public static bool IsReadableAudio(string? mediaType) => AudioDecoder.CanDecode(mediaType);

    /// <summary>Encodes a speech chunk (samples in [-1, 1]) as <see cref="SpeechChunk"/> bytes.</summary>
    public static byte[] EncodeSpeechChunk(ReadOnlySpan<float> samples) => Pcm16Wave.ToPcm16Bytes(samples);

    /// <summary>Encodes a whole answer's speech as a <see cref="Wav"/> file.</summary>
    public static byte[] EncodeWav(ReadOnlySpan<float> samples)
    {
        using var buffer = new MemoryStream();
        Pcm16Wave.Write(buffer, samples);
        return buffer.ToArray();
    }
}
