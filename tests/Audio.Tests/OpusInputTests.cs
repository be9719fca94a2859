using Xunit.Abstractions;

namespace MiniOmni.SK.Audio.Tests;

/// <summary>Opus in Ogg and WebM, as browsers record it, against the synthetic sources the fixtures were encoded from.</summary>
public sealed class OpusInputTests(ITestOutputHelper output)
{
    private const int Rate = WhisperLogMel.SampleRate;

    // Opus decodes at 48 kHz; NAudio's WDL resampler, taking it to 16 kHz, delays it by 1.25 output samples (78 us, measured
    // on a pure tone: 60 dB there, 27 dB one quarter-sample off). The references are the analytic sources, shifted alike.
    private const double ResamplerDelay = 1.25;

    /// <summary>The mono downmix of tones-stereo-48k.wav: the 1250 Hz tone is in antiphase between the channels and cancels.</summary>
    private static float[] StereoSourceDownmix(int samples) => Tone(samples, (440, 0.3));

    /// <summary>tones-mono-16k.wav.</summary>
    private static float[] MonoSource(int samples) => Tone(samples, (440, 0.3), (1250, 0.2));

    [Theory]
    [InlineData("tones-stereo-48k.opus", "audio/ogg", 16000, 37.0)] // opusenc: 39.8 dB measured
    [InlineData("tones-stereo-48k.webm", "audio/webm;codecs=opus", 16000, 19.0)] // ffmpeg libopus: 21.2 dB, 23.1 dB one 48 kHz sample earlier
    [InlineData("tones-mono-16k.ogg", "audio/ogg; codecs=opus", 12000, 15.0)] // ffmpeg libopus from 16 kHz at 24 kbit/s: 16.6 dB
    public void EncodedFixtureDecodesToItsSourceWithTheExactDuration(string file, string mediaType, int expectedSamples, double minSnrDb)
    {
        byte[] bytes = File.ReadAllBytes(Fixture.Audio(file));

        float[] decoded = AudioDecoder.Decode(bytes, mediaType);

        float[] source = file.Contains("mono") ? MonoSource(expectedSamples) : StereoSourceDownmix(expectedSamples);
        double snr = SnrDb(source, decoded);
        output.WriteLine($"{file}: {decoded.Length} samples, SNR {snr:F2} dB against the source");
        Assert.Equal(expectedSamples, decoded.Length);
        Assert.True(snr >= minSnrDb, $"{file}: SNR {snr:F2} dB");
    }

    [Fact]
    public void ChromeMediaRecorderWebmWithUnknownSizedSegmentAndClustersIsRead()
    {
        float[] decoded = AudioDecoder.DecodeFile(Fixture.Audio("chrome-mediarecorder.webm"));

        // Chrome captured the looping source from an arbitrary point, through its 44.1 kHz fake device: align, then compare.
        output.WriteLine($"chrome: {decoded.Length} samples ({decoded.Length / (double)Rate:F3} s), peak {TestWaves.Peak(decoded, 0, decoded.Length):F3}");
        Assert.InRange(decoded.Length, Rate, 2 * Rate);
        Assert.Equal(440, TestWaves.DominantFrequency(decoded, Rate, Rate / 4, decoded.Length), tolerance: 2);
    }

    private static float[] Tone(int samples, params (double Hz, double Amplitude)[] tones)
    {
        var result = new float[samples];
        for (int i = 0; i < samples; i++)
        {
            double t = (i - ResamplerDelay) / Rate;
            result[i] = (float)tones.Sum(tone => tone.Amplitude * Math.Sin(2 * Math.PI * tone.Hz * t));
        }

        return result;
    }

    private static double SnrDb(float[] reference, float[] actual)
    {
        int n = Math.Min(reference.Length, actual.Length);
        double signal = 0, noise = 0;
        for (int i = 0; i < n; i++)
        {
            signal += reference[i] * (double)reference[i];
            noise += (reference[i] - (double)actual[i]) * (reference[i] - actual[i]);
        }

        return 10 * Math.Log10(signal / noise);
    }
}
