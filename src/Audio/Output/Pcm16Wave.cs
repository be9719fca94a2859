using System.Buffers.Binary;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Speech out as 16-bit PCM: float samples are clipped to [-1, 1] and scaled by 32767, truncating toward zero, which is
/// numpy's <c>(np.clip(x, -1, 1) * 32767).astype(np.int16)</c>. The release's <c>int16(x * 32768)</c> wraps at 1.0.
/// </summary>
public static class Pcm16Wave
{
    /// <summary>The SNAC codec's output rate.</summary>
    public const int SpeechSampleRate = 24000;

    private const int HeaderLength = 44;
    private const float FullScale = short.MaxValue;

    /// <summary>Converts one sample; NaN becomes 0.</summary>
    public static short ToPcm16(float sample) =>
        float.IsNaN(sample) ? (short)0 : (short)(Math.Clamp(sample, -1f, 1f) * FullScale);

    /// <summary>Converts samples to little-endian PCM16 bytes, as streamed speech chunks are sent.</summary>
    public static byte[] ToPcm16Bytes(ReadOnlySpan<float> samples)
    {
        var bytes = new byte[samples.Length * sizeof(short)];
        ToPcm16Bytes(samples, bytes);
        return bytes;
    }

    /// <summary>Writes samples as little-endian PCM16 into <paramref name="destination"/> (two bytes per sample).</summary>
    public static void ToPcm16Bytes(ReadOnlySpan<float> samples, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, samples.Length * sizeof(short), nameof(destination));
        for (int i = 0; i < samples.Length; i++)
        {
            BinaryPrimitives.WriteInt16LittleEndian(destination[(i * sizeof(short))..], ToPcm16(samples[i]));
        }
    }

    /// <summary>Writes a mono PCM16 WAV file (header and data) to <paramref name="destination"/>, which is left open.</summary>
    public static void Write(Stream destination, ReadOnlySpan<float> samples, int sampleRate = SpeechSampleRate)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sampleRate);

        // The length is known up front, so the header is written first and the stream never has to seek back:
        // this works on forward-only streams such as HTTP responses, unlike NAudio's WaveFileWriter.
        byte[] wav = new byte[HeaderLength + (samples.Length * sizeof(short))];
        WriteHeader(wav, samples.Length, sampleRate);
        ToPcm16Bytes(samples, wav.AsSpan(HeaderLength));
        destination.Write(wav);
    }

    /// <summary>Writes a mono PCM16 WAV file atomically: readers see either the old file or the complete new one.</summary>
    public static void WriteFile(string path, ReadOnlySpan<float> samples, int sampleRate = SpeechSampleRate)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);

        // The temporary file sits in the same directory so the final rename stays on one file system and is atomic.
        string temporaryPath = Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temporaryPath, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                Write(file, samples, sampleRate);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporaryPath, fullPath, overwrite: true);
        }
        catch
        {
            File.Delete(temporaryPath);
            throw;
        }
    }

    private static void WriteHeader(Span<byte> header, int sampleCount, int sampleRate)
    {
        const short channels = 1;
        const short bitsPerSample = 16;
        const short blockAlign = channels * bitsPerSample / 8;
        int dataLength = sampleCount * blockAlign;

        "RIFF"u8.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], HeaderLength - 8 + dataLength);
        "WAVE"u8.CopyTo(header[8..]);
        "fmt "u8.CopyTo(header[12..]);
        BinaryPrimitives.WriteInt32LittleEndian(header[16..], 16);
        BinaryPrimitives.WriteInt16LittleEndian(header[20..], 1); // WAVE_FORMAT_PCM
        BinaryPrimitives.WriteInt16LittleEndian(header[22..], channels);
        BinaryPrimitives.WriteInt32LittleEndian(header[24..], sampleRate);
        BinaryPrimitives.WriteInt32LittleEndian(header[28..], sampleRate * blockAlign);
        BinaryPrimitives.WriteInt16LittleEndian(header[32..], blockAlign);
        BinaryPrimitives.WriteInt16LittleEndian(header[34..], bitsPerSample);
        "data"u8.CopyTo(header[36..]);
        BinaryPrimitives.WriteInt32LittleEndian(header[40..], dataLength);
    }
}
