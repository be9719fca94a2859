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
        byte[] bytes = File.ReadAllBytes(Fixture.Audio("chrome-mediarecorder.webm"));

        float[] decoded = AudioDecoder.Decode(bytes, "audio/webm;codecs=opus");

        // The recorder ran 1.2 s (MediaRecorder stopped by a timer: 60 packets of 20 ms, no pre-skip in Chrome's OpusHead).
        // Chrome captured the looping source from an arbitrary point and its fake device jumps in phase where the file
        // loops, so the 440 Hz tone is fitted in each 50 ms window: measured 0.30 +- 0.006 and 28-36 dB in 22 windows
        // of 24, the first (start-up) and the loop point's below.
        var windows = Enumerable.Range(0, decoded.Length / 800).Select(w => FitTone(decoded[(w * 800)..((w + 1) * 800)], 440)).ToList();
        output.WriteLine($"chrome: {decoded.Length} samples; per 50 ms window: {string.Join(", ", windows.Select(w => $"{w.Amplitude:F3}/{w.SnrDb:F0} dB"))}");
        Assert.Equal(19200, decoded.Length);
        Assert.True(windows.Count(w => w.SnrDb >= 25) >= 20, "fewer than 20 of 24 windows hold the 440 Hz tone at 25 dB");
        Assert.Equal(0.3, windows.Select(w => w.Amplitude).Order().ElementAt(windows.Count / 2), tolerance: 0.01);
        Assert.True(bytes.AsSpan(0x28, 8).SequenceEqual(new byte[] { 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }), "the fixture's Segment has an unknown size");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/octet-stream")]
    [InlineData("audio/wav")]
    public void OpusIsFoundByItsMagicBytesWhateverTheDeclaredType(string? mediaType)
    {
        byte[] ogg = File.ReadAllBytes(Fixture.Audio("tones-stereo-48k.opus"));
        byte[] webm = File.ReadAllBytes(Fixture.Audio("tones-stereo-48k.webm"));

        Assert.Equal(AudioDecoder.Decode(ogg, "audio/ogg"), AudioDecoder.Decode(ogg, mediaType));
        Assert.Equal(AudioDecoder.Decode(webm, "audio/webm"), AudioDecoder.Decode(webm, mediaType));
    }

    [Fact]
    public async Task ForwardOnlyStreamsReadEitherWayAndTheFileGiveTheSameSamples()
    {
        string path = Fixture.Audio("chrome-mediarecorder.webm");
        using var forwardOnly = new ForwardOnlyStream(File.ReadAllBytes(path));
        using var requestBody = new ForwardOnlyStream(File.ReadAllBytes(path));

        float[] fromFile = AudioDecoder.DecodeFile(path);

        Assert.Equal(fromFile, AudioDecoder.Decode(forwardOnly, "audio/webm"));
        Assert.Equal(fromFile, await AudioDecoder.DecodeAsync(requestBody, "audio/webm;codecs=opus"));
    }

    [Fact]
    public void OggVorbisIsNamedAndRefused()
    {
        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.DecodeFile(Fixture.Audio("tone-vorbis.ogg")));

        Assert.Equal(AudioInputProblem.UnsupportedFormat, error.Problem);
        Assert.Contains("Vorbis", error.Message);
        Assert.Contains("tone-vorbis.ogg", error.Message);
    }

    [Fact]
    public void WebmWithAnotherAudioCodecIsNamedAndRefused()
    {
        byte[] webm = TestContainers.Webm([TestContainers.SimpleBlock([TestContainers.SilentOpusPacket])], codec: "A_VORBIS");

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(webm, inputName: "upload.webm"));

        Assert.Equal(AudioInputProblem.UnsupportedFormat, error.Problem);
        Assert.Contains("A_VORBIS", error.Message);
        Assert.Contains("upload.webm", error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void EveryMatroskaLacingGivesEveryFrame(int lacing)
    {
        // 25 blocks of 4 frames of 20 ms (equal sizes, as fixed lacing needs): 2 s.
        var frames = Enumerable.Repeat(TestContainers.SilentOpusPacket, 4).ToList();
        var blocks = Enumerable.Range(0, 25).SelectMany(_ => lacing == 0 ? frames.Select(f => TestContainers.SimpleBlock([f])) : [TestContainers.SimpleBlock(frames, lacing)]);
        byte[] webm = TestContainers.Webm([[.. blocks.SelectMany(b => b)]]);

        float[] decoded = AudioDecoder.Decode(webm, "audio/webm");

        Assert.Equal(2 * Rate, decoded.Length);
    }

    [Fact]
    public void ChromeStyleClustersFollowingEachOtherAreAllRead()
    {
        // Ten unknown-size clusters of five 20 ms packets each: every cluster nests inside the one before as NEbml reads it.
        var cluster = Enumerable.Range(0, 5).SelectMany(_ => TestContainers.SimpleBlock([TestContainers.SilentOpusPacket])).ToArray();
        byte[] webm = TestContainers.Webm(Enumerable.Repeat(cluster, 10));

        Assert.Equal(Rate, AudioDecoder.Decode(webm).Length);
    }

    [Fact]
    public void PreSkipAndEndGranuleTrimOgg()
    {
        // 50 packets of 960 samples = 48000; pre-skip 480 and a final granule of 48000 leave 47520 at 48 kHz: 15840 at 16 kHz.
        var packets = Enumerable.Repeat(TestContainers.SilentOpusPacket, 50).ToList();

        float[] trimmed = AudioDecoder.Decode(TestContainers.OggOpus(packets, TestContainers.OpusHead(preSkip: 480), finalGranule: 48000));
        float[] whole = AudioDecoder.Decode(TestContainers.OggOpus(packets, TestContainers.OpusHead(preSkip: 0)));

        Assert.Equal(15840, trimmed.Length);
        Assert.Equal(16000, whole.Length);
    }

    [Fact]
    public void OpusOfThirtySecondsIsReadAndOneMorePacketIsTooLong()
    {
        var packets = Enumerable.Repeat(TestContainers.SilentOpusPacket, 1501).ToList(); // 30.02 s
        byte[] ogg = TestContainers.OggOpus(packets, TestContainers.OpusHead(preSkip: 0));
        byte[] exactly = TestContainers.OggOpus(packets[..1500], TestContainers.OpusHead(preSkip: 0));

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(ogg, inputName: "long.ogg"));

        Assert.Equal(AudioInputProblem.TooLong, error.Problem);
        Assert.Contains("long.ogg", error.Message);
        Assert.Equal(WhisperLogMel.WindowSampleCount, AudioDecoder.Decode(exactly).Length);
    }

    private static (double Amplitude, double SnrDb) FitTone(float[] samples, double hz)
    {
        // Least squares on sin and cos at the tone's frequency: the fitted tone and what is left beside it.
        double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
        for (int i = 0; i < samples.Length; i++)
        {
            double s = Math.Sin(2 * Math.PI * hz * i / Rate), c = Math.Cos(2 * Math.PI * hz * i / Rate);
            ss += s * s;
            sc += s * c;
            cc += c * c;
            ys += samples[i] * s;
            yc += samples[i] * c;
        }

        double det = (ss * cc) - (sc * sc);
        double a = ((ys * cc) - (yc * sc)) / det, b = ((yc * ss) - (ys * sc)) / det;
        double signal = 0, noise = 0;
        for (int i = 0; i < samples.Length; i++)
        {
            double fit = (a * Math.Sin(2 * Math.PI * hz * i / Rate)) + (b * Math.Cos(2 * Math.PI * hz * i / Rate));
            signal += fit * fit;
            noise += (samples[i] - fit) * (samples[i] - fit);
        }

        return (Math.Sqrt((a * a) + (b * b)), 10 * Math.Log10(signal / noise));
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
