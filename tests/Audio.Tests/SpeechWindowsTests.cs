namespace MiniOmni.SK.Audio.Tests;

/// <summary>Cutting long recordings into windows Mini-Omni can hear, at their pauses.</summary>
public sealed class SpeechWindowsTests
{
    private const int Rate = 16000;

    [Fact]
    public void A95SecondRecordingIsCutInsideItsPausesIntoWindowsOfAtMost30Seconds()
    {
        // 7 s of tone, then 1.5 s of near silence, repeated: the pauses are where cuts belong.
        var (samples, pauses) = TonesWithPauses(95, toneSeconds: 7, pauseSeconds: 1.5);

        var windows = SpeechWindows.Split(samples);

        Assert.InRange(windows.Count, 4, 7);
        Assert.Equal(0, windows[0].Start);
        Assert.Equal(samples.Length, windows[^1].Start + windows[^1].Length);
        for (int i = 0; i < windows.Count; i++)
        {
            Assert.InRange(windows[i].Length, 1, 30 * Rate);
            if (i > 0)
            {
                Assert.Equal(windows[i - 1].Start + windows[i - 1].Length, windows[i].Start);
                Assert.True(windows[i].SpeechStartTime > windows[i - 1].SpeechEndTime, $"window {i} starts its speech after window {i - 1} ended it");
                int cut = windows[i].Start;
                Assert.True(pauses.Any(p => cut > p.Start && cut < p.End), $"the cut at {cut / (double)Rate:0.00} s is inside a pause");
            }

            Assert.False(windows[i].IsSilent);
        }
    }

    [Fact]
    public void ARecordingWithoutPausesIsStillCutAtMost30SecondsApart()
    {
        var random = new Random(5);
        var samples = new float[70 * Rate];
        for (int i = 0; i < samples.Length; i++)
        {
            samples[i] = (float)((random.NextDouble() * 2) - 1) * 0.3f;
        }

        var windows = SpeechWindows.Split(samples);

        Assert.Equal(3, windows.Count);
        Assert.All(windows, w => Assert.InRange(w.Length, 15 * Rate, 30 * Rate));
        Assert.Equal(samples.Length, windows.Sum(w => w.Length));
    }

    [Fact]
    public void AShortRecordingIsOneWindowAndASilentStretchIsMarkedSilent()
    {
        var tone = TestWaves.Sine(Rate, 1, 300, 0.4, 3);
        var withSilence = new float[40 * Rate];
        tone.CopyTo(withSilence, 0);

        var one = SpeechWindows.Split(tone);
        var two = SpeechWindows.Split(withSilence);

        Assert.Equal(new SpeechWindow(0, tone.Length, 0, tone.Length), Assert.Single(one));
        Assert.Equal(2, two.Count);
        Assert.False(two[0].IsSilent);
        Assert.True(two[1].IsSilent);
        Assert.Equal(TimeSpan.FromSeconds(3), two[0].SpeechEndTime);
    }

    [Fact]
    public void AudioLongerThan30SecondsDecodesOnlyWhenAskedFor()
    {
        byte[] wav = TestWaves.Wav(TestWaves.Sine(Rate, 1, 440, 0.3, 95), Rate, 1, TestEncoding.Pcm16);

        var refused = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(wav, "audio/wav"));
        float[] all = AudioDecoder.Decode(wav, "audio/wav", new AudioInputOptions { MaxDuration = TimeSpan.FromMinutes(2) });
        var tooLong = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(wav, "audio/wav", new AudioInputOptions { MaxDuration = TimeSpan.FromSeconds(60) }));

        Assert.Equal(AudioInputProblem.TooLong, refused.Problem);
        Assert.Equal(95 * Rate, all.Length);
        Assert.Equal(AudioInputProblem.TooLong, tooLong.Problem);
        Assert.Contains("MaxDuration", tooLong.Message);
    }

    /// <summary>Tones of changing pitch with quiet pauses between them, and where the pauses are (in samples).</summary>
    internal static (float[] Samples, List<(int Start, int End)> Pauses) TonesWithPauses(double seconds, double toneSeconds, double pauseSeconds)
    {
        var samples = new float[(int)(seconds * Rate)];
        var pauses = new List<(int, int)>();
        var random = new Random(3);
        int at = 0, tone = 0;
        while (at < samples.Length)
        {
            int toneEnd = Math.Min(samples.Length, at + (int)(toneSeconds * Rate));
            double frequency = 200 + (40 * (tone++ % 7));
            for (int i = at; i < toneEnd; i++)
            {
                samples[i] = (float)(0.3 * Math.Sin(2 * Math.PI * frequency * i / Rate));
            }

            int pauseEnd = Math.Min(samples.Length, toneEnd + (int)(pauseSeconds * Rate));
            for (int i = toneEnd; i < pauseEnd; i++)
            {
                samples[i] = (float)((random.NextDouble() * 2) - 1) * 0.0005f; // room noise, far under the tones
            }

            if (pauseEnd > toneEnd)
            {
                pauses.Add((toneEnd, pauseEnd));
            }

            at = pauseEnd;
        }

        return (samples, pauses);
    }
}
