using NAudio.Wave;

namespace MiniOmni.SK.Audio.Tests;

public sealed class AudioDecoderTests
{
    private const int Rate = WhisperLogMel.SampleRate;

    [Fact]
    public void GoldenQuestionDecodesToItsInt16SamplesOver32768()
    {
        string path = Fixture.Question;

        float[] samples = AudioDecoder.DecodeFile(path);

        using var reader = new WaveFileReader(path);
        var raw = new byte[reader.Length];
        reader.ReadExactly(raw);
        float[] expected = [.. Enumerable.Range(0, raw.Length / 2).Select(i => BitConverter.ToInt16(raw, i * 2) / 32768f)];
        Assert.Equal(18881, samples.Length);
        Assert.Equal(expected, samples);
    }

    [Theory]
    [InlineData(TestEncoding.Pcm8, 1f / 64)]
    [InlineData(TestEncoding.Pcm16, 1e-4f)]
    [InlineData(TestEncoding.Pcm24, 1e-6f)]
    [InlineData(TestEncoding.Pcm32, 1e-6f)]
    [InlineData(TestEncoding.Float32, 0f)]
    [InlineData(TestEncoding.Float64, 1e-7f)]
    public void EverySampleEncodingAt16KhzDecodesToTheSameSignal(TestEncoding encoding, float tolerance)
    {
        float[] sine = TestWaves.Sine(Rate, channels: 1, frequencyHz: 440, amplitude: 0.5, seconds: 1);

        float[] decoded = AudioDecoder.Decode(TestWaves.Wav(sine, Rate, 1, encoding), "audio/wav");

        Assert.Equal(sine.Length, decoded.Length);
        float worst = sine.Zip(decoded, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= tolerance, $"{encoding}: max error {worst}");
    }

    [Fact]
    public void Stereo44KhzIsDownmixedAndResampledKeepingPitchAndLevel()
    {
        float[] sine = TestWaves.Sine(44100, channels: 2, frequencyHz: 440, amplitude: 0.5, seconds: 1);

        float[] decoded = AudioDecoder.Decode(TestWaves.Wav(sine, 44100, 2, TestEncoding.Pcm16));

        Assert.InRange(decoded.Length, Rate - 8, Rate + 8);
        Assert.Equal(440, TestWaves.DominantFrequency(decoded, Rate, 1600, 14400), tolerance: 2);
        Assert.InRange(TestWaves.Peak(decoded, 1600, 14400), 0.47f, 0.53f);
    }

    [Fact]
    public void DownmixAveragesTheChannels()
    {
        // Left and right in antiphase cancel; keeping one channel would leave the full tone.
        float[] tone = TestWaves.Sine(Rate, channels: 1, frequencyHz: 300, amplitude: 0.5, seconds: 0.5);
        float[] antiphase = [.. tone.SelectMany(x => new[] { x, -x })];

        float[] decoded = AudioDecoder.Decode(TestWaves.Wav(antiphase, Rate, 2, TestEncoding.Float32));

        Assert.Equal(tone.Length, decoded.Length);
        Assert.All(decoded, sample => Assert.Equal(0f, sample, tolerance: 1e-6f));
    }

    [Fact]
    public void ExtensibleMultichannel48KhzWavIsRead()
    {
        float[] sine = TestWaves.Sine(48000, channels: 4, frequencyHz: 1000, amplitude: 0.25, seconds: 1);

        float[] decoded = AudioDecoder.Decode(TestWaves.Wav(sine, 48000, 4, TestEncoding.Pcm24, extensible: true));

        Assert.InRange(decoded.Length, Rate - 8, Rate + 8);
        Assert.Equal(1000, TestWaves.DominantFrequency(decoded, Rate, 1600, 14400), tolerance: 3);
        Assert.InRange(TestWaves.Peak(decoded, 1600, 14400), 0.23f, 0.27f);
    }

    [Fact]
    public void Mp3FileDecodesThroughNLayer()
    {
        float[] decoded = AudioDecoder.DecodeFile(Fixture.Audio("sine440-stereo-44k1.mp3"));

        // NLayer drops the encoder delay and padding LAME records, so the 1 s of tone comes back exactly (allow up to a frame).
        Assert.InRange(decoded.Length, Rate - 8, Rate + 1200);
        Assert.Equal(440, TestWaves.DominantFrequency(decoded, Rate, 3200, 12800), tolerance: 2);
        Assert.InRange(TestWaves.Peak(decoded, 3200, 12800), 0.45f, 0.55f);
    }

    [Fact]
    public void Mp3FromForwardOnlyStreamMatchesTheFile()
    {
        string path = Fixture.Audio("sine440-stereo-44k1.mp3");
        using var forwardOnly = new ForwardOnlyStream(File.ReadAllBytes(path));

        float[] decoded = AudioDecoder.Decode(forwardOnly, "audio/mpeg");

        Assert.Equal(AudioDecoder.DecodeFile(path), decoded);
    }

    [Fact]
    public void HeaderWinsOverAMisleadingMediaTypeOrExtension()
    {
        float[] sine = TestWaves.Sine(Rate, 1, 440, 0.5, 0.25);
        byte[] wav = TestWaves.Wav(sine, Rate, 1, TestEncoding.Float32);
        string misnamed = Path.Combine(Path.GetTempPath(), $"{Guid.NewGuid():N}.mp3");
        File.WriteAllBytes(misnamed, wav);
        try
        {
            Assert.Equal(sine, AudioDecoder.Decode(wav, "audio/mpeg"));
            Assert.Equal(sine, AudioDecoder.DecodeFile(misnamed));
        }
        finally
        {
            File.Delete(misnamed);
        }
    }

    [Fact]
    public void CallersStreamIsLeftOpen()
    {
        using var wav = new MemoryStream(TestWaves.Wav(TestWaves.Sine(Rate, 1, 440, 0.5, 0.1), Rate, 1, TestEncoding.Pcm16));
        using var mp3 = File.OpenRead(Fixture.Audio("sine440-stereo-44k1.mp3"));

        AudioDecoder.Decode(wav);
        AudioDecoder.Decode(mp3);

        Assert.True(wav.CanRead);
        Assert.True(mp3.CanRead);
    }

    [Fact]
    public void SilenceDecodesAndGivesTheFlooredMel()
    {
        float[] decoded = AudioDecoder.Decode(TestWaves.Wav(new float[Rate], Rate, 1, TestEncoding.Pcm16));

        float[] mel = WhisperLogMel.Compute(decoded);

        Assert.Equal(Rate, decoded.Length);
        Assert.All(decoded, sample => Assert.Equal(0f, sample));
        Assert.All(mel, value => Assert.Equal(-1.5f, value));
    }

    [Fact]
    public void EmptyInputIsRejected()
    {
        string path = Path.Combine(Path.GetTempPath(), $"{Guid.NewGuid():N}.wav");
        File.WriteAllBytes(path, []);
        try
        {
            var fromFile = Assert.Throws<AudioFormatException>(() => AudioDecoder.DecodeFile(path));
            var fromBytes = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(ReadOnlyMemory<byte>.Empty, "audio/wav"));

            Assert.Equal(AudioInputProblem.Empty, fromFile.Problem);
            Assert.Contains(path, fromFile.Message);
            Assert.Equal(AudioInputProblem.Empty, fromBytes.Problem);
            Assert.Contains("audio/wav", fromBytes.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void NonFiniteSamplesAreRejected(float bad)
    {
        float[] samples = TestWaves.Sine(Rate, 1, 440, 0.5, 0.5);
        samples[4000] = bad;

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(TestWaves.Wav(samples, Rate, 1, TestEncoding.Float32), inputName: "nan.wav"));

        Assert.Equal(AudioInputProblem.InvalidSamples, error.Problem);
        Assert.Contains("nan.wav", error.Message);
        Assert.Contains("sample 4000", error.Message);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(30)]
    [InlineData(40)]
    public void CutOffHeaderIsCorrupt(int keptBytes)
    {
        byte[] wav = TestWaves.Wav(TestWaves.Sine(Rate, 1, 440, 0.5, 0.1), Rate, 1, TestEncoding.Pcm16);

        // Keep the RIFF size consistent with the cut so only the header damage is reported.
        byte[] cut = wav[..keptBytes];
        if (keptBytes >= 8)
        {
            BitConverter.TryWriteBytes(cut.AsSpan(4), keptBytes - 8);
        }

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(cut));

        Assert.Equal(AudioInputProblem.CorruptHeader, error.Problem);
    }

    [Fact]
    public void CutOffDataIsTruncated()
    {
        byte[] wav = TestWaves.Wav(TestWaves.Sine(Rate, 1, 440, 0.5, 0.5), Rate, 1, TestEncoding.Pcm16);

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(wav[..(wav.Length / 2)], inputName: "upload"));

        Assert.Equal(AudioInputProblem.Truncated, error.Problem);
        Assert.Contains("upload", error.Message);
    }

    [Fact]
    public void Mp3HeaderWithoutFramesIsRejected()
    {
        byte[] fake = [.. "ID3"u8, 3, 0, 0, 0, 0, 0, 0, .. new byte[4000]];

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(fake, "audio/mpeg"));

        Assert.Equal(AudioInputProblem.CorruptHeader, error.Problem);
        Assert.Contains("MPEG", error.Message);
    }

    [Theory]
    [InlineData("fLaC\0\0\0\u0022\0\0\0\0\0\0", "FLAC")]
    [InlineData("\0\0\0\u0020ftypM4A \0\0", "MP4")]
    [InlineData("just some text, not audio", "unrecognised")]
    public void OtherContainersAreUnsupported(string header, string expectedName)
    {
        byte[] bytes = [.. header.Select(c => (byte)c), .. new byte[256]];

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(bytes));

        Assert.Equal(AudioInputProblem.UnsupportedFormat, error.Problem);
        Assert.Contains(expectedName, error.Message);
    }

    [Fact]
    public void AdpcmWavIsUnsupported()
    {
        var adpcm = WaveFormat.CreateCustomFormat(WaveFormatEncoding.Adpcm, Rate, 1, 4096, 256, 4);

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(TestWaves.Wav(adpcm, new byte[2048])));

        Assert.Equal(AudioInputProblem.UnsupportedFormat, error.Problem);
        Assert.Contains("Adpcm", error.Message);
    }

    [Fact]
    public void WavWithoutSamplesIsRejected()
    {
        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(TestWaves.Wav([], Rate, 1, TestEncoding.Pcm16)));

        Assert.Equal(AudioInputProblem.NoSamples, error.Problem);
    }

    [Fact]
    public void AudioOverThirtySecondsFailsByDefaultAndIsCutOnRequest()
    {
        float[] longSine = TestWaves.Sine(Rate, 1, 220, 0.5, 31);
        byte[] wav = TestWaves.Wav(longSine, Rate, 1, TestEncoding.Float32);

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(wav));
        float[] cut = AudioDecoder.Decode(wav, options: new AudioInputOptions { TruncateToWindow = true });

        Assert.Equal(AudioInputProblem.TooLong, error.Problem);
        Assert.Contains(nameof(AudioInputOptions.TruncateToWindow), error.Message);
        Assert.Equal(longSine[..WhisperLogMel.WindowSampleCount], cut);
    }

    [Fact]
    public void ExactlyThirtySecondsIsAccepted()
    {
        float[] decoded = AudioDecoder.Decode(TestWaves.Wav(new float[WhisperLogMel.WindowSampleCount], Rate, 1, TestEncoding.Pcm16));

        Assert.Equal(WhisperLogMel.WindowSampleCount, decoded.Length);
    }
}
