namespace MiniOmni.SK.Audio.Tests;

/// <summary>Speech written as Ogg Opus reads back through the decoder the server uses for uploads.</summary>
public sealed class OggOpusWriterTests
{
    [Theory]
    [InlineData(24000, 1.0)]
    [InlineData(24000, 0.013)]
    [InlineData(16000, 2.5)]
    public void ATonesOggOpusDecodesBackToItsLengthPitchAndLoudness(int rate, double seconds)
    {
        float[] tone = TestWaves.Sine(rate, 1, 440, 0.5, seconds);
        using var file = new MemoryStream();
        using (var writer = new OggOpusWriter(file, rate))
        {
            // In uneven pieces, as speech chunks come.
            for (int at = 0; at < tone.Length; at += 997)
            {
                writer.Write(tone.AsSpan(at, Math.Min(997, tone.Length - at)));
            }
        }

        float[] decoded = AudioDecoder.Decode(file.ToArray(), "audio/ogg");

        Assert.Equal("OggS", System.Text.Encoding.ASCII.GetString(file.ToArray(), 0, 4));
        Assert.InRange(decoded.Length, (int)(seconds * 16000) - 2, (int)(seconds * 16000) + 2);
        if (seconds >= 1)
        {
            // Skip the codec's first 50 ms while it settles.
            var steady = decoded.AsSpan(800);
            double rms = Math.Sqrt(steady.ToArray().Average(x => x * (double)x));
            int crossings = 0;
            for (int i = 1; i < steady.Length; i++)
            {
                crossings += (steady[i - 1] < 0) != (steady[i] < 0) ? 1 : 0;
            }

            double pitch = crossings / 2.0 / (steady.Length / 16000.0);
            Assert.InRange(rms, 0.5 / Math.Sqrt(2) * 0.8, 0.5 / Math.Sqrt(2) * 1.2);
            Assert.InRange(pitch, 430, 450);
        }
    }
}
