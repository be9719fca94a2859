using System.Buffers.Binary;
using NAudio.Wave;

namespace MiniOmni.SK.Audio.Tests;

/// <summary>Issue 18's audio class: each bad input is built here and must fail with an error naming the input and the fault.</summary>
public sealed class HostileInputTests
{
    private const int Rate = WhisperLogMel.SampleRate;
    private const string Name = "upload.wav";

    private static byte[] Wav(int channels = 1, int rate = Rate) =>
        TestWaves.Wav(TestWaves.Sine(rate, channels, 440, 0.5, 0.1), rate, channels, TestEncoding.Pcm16);

    private static AudioFormatException Refused(byte[] input, AudioInputProblem problem, params string[] mentions)
    {
        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(input, inputName: Name));
        Assert.Equal(problem, error.Problem);
        Assert.Contains(Name, error.Message);
        foreach (string mention in mentions)
        {
            Assert.Contains(mention, error.Message);
        }

        return error;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65535)]
    [InlineData(65)]
    public void WavChannelCountOutsideOneToSixtyFourIsNamed(int channels)
    {
        byte[] wav = Wav();
        BinaryPrimitives.WriteUInt16LittleEndian(wav.AsSpan(22), (ushort)channels);

        Refused(wav, AudioInputProblem.CorruptHeader, $"{channels} channels", "'fmt '");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1_000_000u)]
    [InlineData(999u)]
    [InlineData(uint.MaxValue)]
    public void WavSampleRateOutsideTheReadRangeIsNamedNotReportedAsTooLong(uint rate)
    {
        byte[] wav = Wav();
        BinaryPrimitives.WriteUInt32LittleEndian(wav.AsSpan(24), rate);

        var error = Refused(wav, AudioInputProblem.CorruptHeader, $"sample rate of {rate} Hz");
        Assert.DoesNotContain("longer", error.Message);
    }

    [Fact]
    public void TwoContradictoryFormatChunksAreRefused()
    {
        byte[] wav = Wav();
        byte[] second = wav[12..36]; // 'fmt ', size 16, the format
        BinaryPrimitives.WriteUInt32LittleEndian(second.AsSpan(12), 44100);
        byte[] forged = [.. wav[..36], .. second, .. wav[36..]];
        BinaryPrimitives.WriteUInt32LittleEndian(forged.AsSpan(4), (uint)(forged.Length - 8));

        Refused(forged, AudioInputProblem.CorruptHeader, "two 'fmt ' chunks disagree", "16000 Hz", "44100 Hz");
    }

    [Fact]
    public void ARepeatedIdenticalFormatChunkIsHarmless()
    {
        byte[] wav = Wav();
        byte[] forged = [.. wav[..36], .. wav[12..36], .. wav[36..]];
        BinaryPrimitives.WriteUInt32LittleEndian(forged.AsSpan(4), (uint)(forged.Length - 8));

        Assert.Equal(AudioDecoder.Decode(wav), AudioDecoder.Decode(forged));
    }

    [Fact]
    public void BlockAlignThatDisagreesWithTheSampleFormatIsNamed()
    {
        byte[] wav = Wav();
        BinaryPrimitives.WriteUInt16LittleEndian(wav.AsSpan(32), 3);

        Refused(wav, AudioInputProblem.CorruptHeader, "block align of 3 bytes");
    }

    [Fact]
    public void ADataChunkLongerThanTheInputIsTruncatedButAStreamingWritersPlaceholderReadsToTheEnd()
    {
        byte[] wav = Wav();
        byte[] forged = (byte[])wav.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(forged.AsSpan(40), 0x7FFF_0000);
        byte[] streamed = (byte[])wav.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(streamed.AsSpan(4), uint.MaxValue);
        BinaryPrimitives.WriteUInt32LittleEndian(streamed.AsSpan(40), uint.MaxValue);

        Refused(forged, AudioInputProblem.Truncated, "'data' chunk", "2147418112 bytes");
        Assert.Equal(AudioDecoder.Decode(wav), AudioDecoder.Decode(streamed));
    }

    [Fact]
    public void AnExtensibleWavOfAnUnknownSubFormatIsUnsupported()
    {
        byte[] wav = TestWaves.Wav(TestWaves.Sine(48000, 2, 440, 0.5, 0.1), 48000, 2, TestEncoding.Pcm16, extensible: true);
        int fmt = wav.AsSpan().IndexOf("fmt "u8);
        wav[fmt + 8 + 24 + 5] ^= 0x01; // a byte of the sub-format GUID's shared tail

        Refused(wav, AudioInputProblem.UnsupportedFormat, "sub-format");
    }

    [Fact]
    public void Rf64IsRead()
    {
        byte[] wav = Wav();
        byte[] data = wav[44..];
        var rf64 = new MemoryStream();
        rf64.Write("RF64"u8);
        rf64.Write(BitConverter.GetBytes(uint.MaxValue));
        rf64.Write("WAVEds64"u8);
        rf64.Write(BitConverter.GetBytes(28));
        rf64.Write(BitConverter.GetBytes(36L + 36 + data.Length));
        rf64.Write(BitConverter.GetBytes((long)data.Length));
        rf64.Write(BitConverter.GetBytes((long)data.Length / 2));
        rf64.Write(BitConverter.GetBytes(0));
        rf64.Write(wav.AsSpan(12, 24)); // the fmt chunk
        rf64.Write("data"u8);
        rf64.Write(BitConverter.GetBytes(uint.MaxValue));
        rf64.Write(data);

        Assert.Equal(AudioDecoder.Decode(wav), AudioDecoder.Decode(rf64.ToArray()));
    }

    [Fact]
    public void RandomBytesNamedMp3AreNotDecodedAsNoise()
    {
        var random = new Random(18);
        byte[] noise = new byte[20_000];
        random.NextBytes(noise);
        noise[0] = 0; // not a sync word by chance
        string path = Path.Combine(Path.GetTempPath(), $"{Guid.NewGuid():N}.mp3");
        File.WriteAllBytes(path, noise);
        try
        {
            var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.DecodeFile(path));

            Assert.Equal(AudioInputProblem.CorruptHeader, error.Problem);
            Assert.Contains(path, error.Message);
            Assert.Contains("MPEG audio frame", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ALoneValidFrameHeaderInRandomBytesIsNotEnough()
    {
        byte[] noise = new byte[20_000];
        new Random(7).NextBytes(noise);
        noise[0] = 0;
        byte[] header = [0xFF, 0xFB, 0x90, 0x64]; // MPEG-1 layer III, 128 kbit/s, 44.1 kHz: a 417-byte frame
        header.CopyTo(noise, 1000);
        noise[1000 + 417] = 0; // what follows is no frame

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(noise, "audio/mpeg", inputName: "noise.mp3"));

        Assert.Contains("noise.mp3", error.Message);
        Assert.Contains("consecutive valid MPEG audio frames", error.Message);
    }

    [Fact]
    public void ABitFlippedMp3ThatNLayerTripsOverIsCorruptDataNotAnIndexError()
    {
        // Found by probing the fixture with four bit flips in its frames: NLayer indexes past an array on this one.
        byte[] mp3 = File.ReadAllBytes(Fixture.Audio("sine440-stereo-44k1.mp3"));
        foreach (int bit in new[] { 17776, 79087, 22639, 73490 })
        {
            mp3[bit / 8] ^= (byte)(1 << (bit % 8));
        }

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(mp3, "audio/mpeg", inputName: "flipped.mp3"));

        Assert.Equal(AudioInputProblem.CorruptData, error.Problem);
        Assert.Contains("flipped.mp3", error.Message);
        Assert.Contains("MP3 data is damaged", error.Message);
        Assert.IsType<IndexOutOfRangeException>(error.InnerException);
    }

    [Fact]
    public void AnId3TagLargerThanTheFileIsTruncated()
    {
        byte[] mp3 = File.ReadAllBytes(Fixture.Audio("sine440-stereo-44k1.mp3"));
        byte[] forged = [.. "ID3"u8, 4, 0, 0, 0x7F, 0x7F, 0x7F, 0x7F, .. mp3];

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(forged, inputName: "tagged.mp3"));

        Assert.Equal(AudioInputProblem.Truncated, error.Problem);
        Assert.Contains("ID3v2 tag", error.Message);
    }

    [Fact]
    public void AnEndlessForwardOnlyStreamFailsOnceItPassesTheLimit()
    {
        var endless = new EndlessStream();
        var options = new AudioInputOptions { MaxInputBytes = 1 << 20 };

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(endless, "audio/wav", options, inputName: "socket"));

        Assert.Equal(AudioInputProblem.InputTooLarge, error.Problem);
        Assert.Contains("socket", error.Message);
        Assert.Contains(nameof(AudioInputOptions.MaxInputBytes), error.Message);
        Assert.InRange(endless.BytesRead, options.MaxInputBytes, options.MaxInputBytes + (128 * 1024));
    }

    [Fact]
    public async Task AnEndlessStreamReadAsynchronouslyFailsOnceItPassesTheLimit()
    {
        var endless = new EndlessStream();
        var options = new AudioInputOptions { MaxInputBytes = 1 << 20 };

        var error = await Assert.ThrowsAsync<AudioFormatException>(() => AudioDecoder.DecodeAsync(endless, "audio/webm", options, "request body"));

        Assert.Equal(AudioInputProblem.InputTooLarge, error.Problem);
        Assert.Contains("request body", error.Message);
        Assert.InRange(endless.BytesRead, options.MaxInputBytes, options.MaxInputBytes + (128 * 1024));
    }

    [Fact]
    public void ExactlyThirtySecondsAtAnyRateIsAcceptedAndOneFrameMoreIsNot()
    {
        foreach (int rate in new[] { 8000, 44100, 48000 })
        {
            var format = WaveFormat.CreateCustomFormat(WaveFormatEncoding.Pcm, rate, 1, rate * 2, 2, 16);
            byte[] exactly = TestWaves.Wav(format, new byte[rate * 30 * 2]);
            byte[] over = TestWaves.Wav(format, new byte[(rate * 30 * 2) + 2]);

            Assert.Equal(WhisperLogMel.WindowSampleCount, AudioDecoder.Decode(exactly).Length);
            Assert.Equal(AudioInputProblem.TooLong, Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(over)).Problem);
        }
    }

    [Fact]
    public void DeclaredWebmThatIsNotIsNamed()
    {
        byte[] text = "definitely not a recording"u8.ToArray();

        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(text, "audio/webm;codecs=opus", inputName: "blob"));

        Assert.Equal(AudioInputProblem.CorruptHeader, error.Problem);
        Assert.Contains("declared as WebM/Matroska", error.Message);
    }
}
