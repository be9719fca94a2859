using System.Buffers.Binary;
using NAudio.Wave;

namespace MiniOmni.SK.Audio.Tests;

/// <summary>Sample encodings the tests write WAV files in.</summary>
public enum TestEncoding
{
    Pcm8,
    Pcm16,
    Pcm24,
    Pcm32,
    Float32,
    Float64,
}

/// <summary>Builds WAV files in memory and measures decoded signals.</summary>
internal static class TestWaves
{
    /// <summary>A sine identical in every channel, interleaved.</summary>
    public static float[] Sine(int sampleRate, int channels, double frequencyHz, double amplitude, double seconds)
    {
        int frames = (int)(sampleRate * seconds);
        var samples = new float[frames * channels];
        for (int i = 0; i < frames; i++)
        {
            float value = (float)(amplitude * Math.Sin(2 * Math.PI * frequencyHz * i / sampleRate));
            samples.AsSpan(i * channels, channels).Fill(value);
        }

        return samples;
    }

    public static byte[] Wav(float[] interleaved, int sampleRate, int channels, TestEncoding encoding, bool extensible = false)
    {
        int bits = encoding switch
        {
            TestEncoding.Pcm8 => 8,
            TestEncoding.Pcm16 => 16,
            TestEncoding.Pcm24 => 24,
            TestEncoding.Pcm32 or TestEncoding.Float32 => 32,
            _ => 64,
        };
        bool isFloat = encoding is TestEncoding.Float32 or TestEncoding.Float64;
        int width = bits / 8;
        WaveFormat format = extensible
            ? new WaveFormatExtensible(sampleRate, bits, channels, isFloat, bits, 0)
            : WaveFormat.CreateCustomFormat(
                isFloat ? WaveFormatEncoding.IeeeFloat : WaveFormatEncoding.Pcm, sampleRate, channels, sampleRate * channels * width, channels * width, bits);
        return Wav(format, Encode(interleaved, encoding, width));
    }

    public static byte[] Wav(WaveFormat format, byte[] data)
    {
        using var stream = new MemoryStream();
        using (var writer = new WaveFileWriter(stream, format))
        {
            writer.Write(data);
        }

        return stream.ToArray();
    }

    private static byte[] Encode(float[] samples, TestEncoding encoding, int width)
    {
        var bytes = new byte[samples.Length * width];
        for (int i = 0; i < samples.Length; i++)
        {
            var target = bytes.AsSpan(i * width, width);
            double x = samples[i];
            switch (encoding)
            {
                case TestEncoding.Pcm8:
                    target[0] = (byte)Math.Clamp(Math.Round((x * 128) + 128), 0, 255);
                    break;
                case TestEncoding.Pcm16:
                    BinaryPrimitives.WriteInt16LittleEndian(target, (short)Math.Round(x * 32767));
                    break;
                case TestEncoding.Pcm24:
                    int value24 = (int)Math.Round(x * 8388607);
                    target[0] = (byte)value24;
                    target[1] = (byte)(value24 >> 8);
                    target[2] = (byte)(value24 >> 16);
                    break;
                case TestEncoding.Pcm32:
                    BinaryPrimitives.WriteInt32LittleEndian(target, (int)Math.Round(x * int.MaxValue));
                    break;
                case TestEncoding.Float32:
                    BinaryPrimitives.WriteSingleLittleEndian(target, (float)x);
                    break;
                case TestEncoding.Float64:
                    BinaryPrimitives.WriteDoubleLittleEndian(target, x);
                    break;
            }
        }

        return bytes;
    }

    /// <summary>Frequency from upward zero crossings between two sample positions.</summary>
    public static double DominantFrequency(ReadOnlySpan<float> samples, int sampleRate, int from, int to)
    {
        int firstCrossing = -1;
        int lastCrossing = -1;
        int crossings = 0;
        for (int i = from + 1; i < to; i++)
        {
            if (samples[i - 1] < 0 && samples[i] >= 0)
            {
                firstCrossing = firstCrossing < 0 ? i : firstCrossing;
                lastCrossing = i;
                crossings++;
            }
        }

        return (crossings - 1) * (double)sampleRate / (lastCrossing - firstCrossing);
    }

    /// <summary>Peak absolute value between two sample positions.</summary>
    public static float Peak(ReadOnlySpan<float> samples, int from, int to)
    {
        float peak = 0;
        foreach (float sample in samples[from..to])
        {
            peak = Math.Max(peak, Math.Abs(sample));
        }

        return peak;
    }
}
