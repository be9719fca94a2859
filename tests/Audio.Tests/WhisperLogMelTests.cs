using Xunit.Abstractions;

namespace MiniOmni.SK.Audio.Tests;

public sealed class WhisperLogMelTests(ITestOutputHelper output)
{
    [Fact]
    public void MatchesWhisperReferenceForGoldenQuestion()
    {
        float[] samples = AudioDecoder.DecodeFile(Fixture.Question);
        float[] expected = Fixture.ReadFloats("mel.f32");

        float[] actual = WhisperLogMel.Compute(samples);

        Assert.Equal(WhisperLogMel.MelBinCount * WhisperLogMel.FrameCount, expected.Length);
        Assert.Equal(expected.Length, actual.Length);
        double maxError = 0;
        int worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            if (error > maxError)
            {
                maxError = error;
                worst = i;
            }
        }

        output.WriteLine($"max |mel - reference| = {maxError:E3} at mel {worst / WhisperLogMel.FrameCount}, frame {worst % WhisperLogMel.FrameCount}");
        Assert.True(maxError <= 1e-4, $"max abs error {maxError:E3} exceeds 1e-4");
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(319, 1)]
    [InlineData(320, 2)]
    [InlineData(18881, 60)]
    [InlineData(480000, 1500)] // 30 s exactly: the release's formula says 1501, the encoder yields 1500
    [InlineData(64320, 201)] // 4.02 s: the reference's doubles give 4019.999... ms, so one frame fewer than exact arithmetic
    public void FeatureFrameCountMatchesMiniOmni(int sampleCount, int expected)
    {
        Assert.Equal(expected, WhisperLogMel.FeatureFrameCount(sampleCount));
    }

    [Fact]
    public void SilenceGivesTheFloorEverywhere()
    {
        // All-zero power clamps to 1e-10: log10 = -10, the peak is -10 too, so every value is (-10 + 4) / 4 = -1.5.
        float[] mel = WhisperLogMel.Compute(new float[WhisperLogMel.SampleRate]);

        Assert.All(mel, value => Assert.Equal(-1.5f, value));
    }

    [Fact]
    public void QuietPartsAreFlooredEightDecadesBelowThePeak()
    {
        // A tone then silence: the silent frames' power (0, clamped to 1e-10) is far below peak - 8 decades, so they sit on the floor.
        float[] samples = SineWave(WhisperLogMel.SampleRate, frequencyHz: 1000, amplitude: 0.5, seconds: 2);

        float[] mel = WhisperLogMel.Compute(samples);

        float peak = mel.Max();
        float floor = mel.Min();
        Assert.Equal(peak - 2f, floor, tolerance: 1e-5f);
        Assert.Equal(floor, mel[(40 * WhisperLogMel.FrameCount) + 2500]);
    }

    [Fact]
    public void ToneLandsInTheMelBinCoveringItsFrequency()
    {
        float[] samples = SineWave(WhisperLogMel.SampleRate, frequencyHz: 1000, amplitude: 0.5, seconds: 1);

        float[] mel = WhisperLogMel.Compute(samples);

        // Slaney mel: 1 kHz is mel 15; 80 bins span 0..~45.2 mel, so the bin centred nearest is about 15 / (45.2 / 81) - 1 = 26.
        int frame = 50;
        int loudest = Enumerable.Range(0, WhisperLogMel.MelBinCount).MaxBy(m => mel[(m * WhisperLogMel.FrameCount) + frame]);
        Assert.InRange(loudest, 25, 27);
    }

    [Fact]
    public void LongerInputIsCutToTheWindow()
    {
        float[] window = SineWave(WhisperLogMel.SampleRate, 300, 0.3, seconds: 30);
        float[] longer = [.. window, .. SineWave(WhisperLogMel.SampleRate, 3000, 0.9, seconds: 2)];

        Assert.Equal(WhisperLogMel.Compute(window), WhisperLogMel.Compute(longer));
    }

    internal static float[] SineWave(int sampleRate, double frequencyHz, double amplitude, double seconds)
    {
        var samples = new float[(int)(sampleRate * seconds)];
        for (int i = 0; i < samples.Length; i++)
        {
            samples[i] = (float)(amplitude * Math.Sin(2 * Math.PI * frequencyHz * i / sampleRate));
        }

        return samples;
    }
}
