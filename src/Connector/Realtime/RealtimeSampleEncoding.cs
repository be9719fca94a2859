using NAudio.Codecs;

namespace MiniOmni.SK;

/// <summary>How a realtime session's raw audio stores its samples.</summary>
internal enum RealtimeSampleEncoding
{
    /// <summary>16-bit signed little-endian PCM (<c>audio/pcm</c>).</summary>
    Pcm16,

    /// <summary>G.711 mu-law, one byte a sample (<c>audio/pcmu</c>, the beta's <c>g711_ulaw</c>); telephony's 8 kHz.</summary>
    MuLaw,

    /// <summary>G.711 A-law, one byte a sample (<c>audio/pcma</c>, the beta's <c>g711_alaw</c>); telephony's 8 kHz.</summary>
    ALaw,
}

/// <summary>G.711 as telephony bridges send and take it, through NAudio's codecs; and the session's output encoding by media type.</summary>
internal static class RealtimeG711
{
    /// <summary>G.711's sample rate.</summary>
    public const int SampleRate = 8000;

    /// <summary>The media type of mu-law audio.</summary>
    public const string MuLawMediaType = "audio/pcmu";

    /// <summary>The media type of A-law audio.</summary>
    public const string ALawMediaType = "audio/pcma";

    /// <summary>The G.711 encoding <paramref name="mediaType"/> names (parameters ignored), or null for any other type.</summary>
    public static RealtimeSampleEncoding? EncodingOf(string? mediaType)
    {
        string type = (mediaType ?? string.Empty).Split(';', 2)[0].Trim().ToLowerInvariant();
        return type switch
        {
            MuLawMediaType => RealtimeSampleEncoding.MuLaw,
            ALawMediaType => RealtimeSampleEncoding.ALaw,
            _ => null,
        };
    }

    /// <summary>Decodes G.711 bytes to samples in [-1, 1].</summary>
    public static float[] Decode(ReadOnlySpan<byte> bytes, RealtimeSampleEncoding encoding)
    {
        var samples = new float[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            short linear = encoding == RealtimeSampleEncoding.MuLaw ? MuLawDecoder.MuLawToLinearSample(bytes[i]) : ALawDecoder.ALawToLinearSample(bytes[i]);
            samples[i] = linear / 32768f;
        }

        return samples;
    }

    /// <summary>Encodes samples in [-1, 1] (clipped beyond) as <paramref name="encoding"/>: G.711 bytes, or 16-bit PCM.</summary>
    public static byte[] Encode(ReadOnlySpan<float> samples, RealtimeSampleEncoding encoding)
    {
        if (encoding == RealtimeSampleEncoding.Pcm16)
        {
            return MiniOmniMediaTypes.EncodeSpeechChunk(samples);
        }

        var bytes = new byte[samples.Length];
        for (int i = 0; i < samples.Length; i++)
        {
            short linear = (short)Math.Clamp(MathF.Round(samples[i] * 32767f), short.MinValue, short.MaxValue);
            bytes[i] = encoding == RealtimeSampleEncoding.MuLaw ? MuLawEncoder.LinearToMuLawSample(linear) : ALawEncoder.LinearToALawSample(linear);
        }

        return bytes;
    }
}
