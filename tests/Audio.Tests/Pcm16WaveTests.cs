using NAudio.Wave;

namespace MiniOmni.SK.Audio.Tests;

public sealed class Pcm16WaveTests
{
    [Theory]
    [InlineData(0f, 0)]
    [InlineData(1f, 32767)]
    [InlineData(-1f, -32767)]
    [InlineData(0.5f, 16383)] // 16383.5 truncates toward zero, as numpy's astype(int16) does
    [InlineData(-0.5f, -16383)]
    [InlineData(1.0001f, 32767)] // the release's int16(x * 32768) would wrap to -32768 here
    [InlineData(7f, 32767)]
    [InlineData(-7f, -32767)]
    [InlineData(float.PositiveInfinity, 32767)]
    [InlineData(float.NaN, 0)]
    public void SamplesAreClippedThenScaledBy32767(float sample, short expected)
    {
        Assert.Equal(expected, Pcm16Wave.ToPcm16(sample));
    }

    [Fact]
    public void Pcm16BytesAreLittleEndian()
    {
        byte[] bytes = Pcm16Wave.ToPcm16Bytes([1f, -1f, 0.25f]);

        Assert.Equal(new byte[] { 0xFF, 0x7F, 0x01, 0x80, 0xFF, 0x1F }, bytes);
    }

    [Fact]
    public void WavRoundTripsThroughNAudioWithClipping()
    {
        float[] samples = [.. TestWaves.Sine(Pcm16Wave.SpeechSampleRate, 1, 300, 0.8, 0.2), 1.5f, -1.5f, 1f, -1f];
        using var stream = new MemoryStream();

        Pcm16Wave.Write(stream, samples);

        stream.Position = 0;
        using var reader = new WaveFileReader(stream);
        Assert.Equal(new WaveFormat(Pcm16Wave.SpeechSampleRate, 16, 1), reader.WaveFormat);
        var data = new byte[reader.Length];
        reader.ReadExactly(data);
        short[] written = [.. Enumerable.Range(0, data.Length / 2).Select(i => BitConverter.ToInt16(data, i * 2))];
        Assert.Equal(samples.Select(Pcm16Wave.ToPcm16), written);
        Assert.Equal(new short[] { 32767, -32767, 32767, -32767 }, written[^4..]);
    }

    [Fact]
    public void WrittenWavDecodesBackAt16Khz()
    {
        float[] samples = TestWaves.Sine(Pcm16Wave.SpeechSampleRate, 1, 440, 0.5, 1);
        using var stream = new MemoryStream();
        Pcm16Wave.Write(stream, samples);

        float[] decoded = AudioDecoder.Decode(stream.ToArray(), "audio/wav");

        Assert.InRange(decoded.Length, 15992, 16008);
        Assert.Equal(440, TestWaves.DominantFrequency(decoded, 16000, 1600, 14400), tolerance: 2);
    }

    [Fact]
    public void WriteFileReplacesAtomicallyAndLeavesNoTemporaryFile()
    {
        string directory = Directory.CreateTempSubdirectory("pcm16-").FullName;
        string path = Path.Combine(directory, "answer.wav");
        try
        {
            File.WriteAllText(path, "old contents");

            Pcm16Wave.WriteFile(path, [0.1f, 0.2f, 0.3f]);

            Assert.Equal(new[] { path }, Directory.GetFiles(directory));
            byte[] bytes = File.ReadAllBytes(path);
            Assert.Equal(44 + 6, bytes.Length);
            Assert.Equal("RIFF"u8.ToArray(), bytes[..4]);
            Assert.Equal(Pcm16Wave.ToPcm16Bytes([0.1f, 0.2f, 0.3f]), bytes[44..]);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void FailedWriteLeavesTheOldFileAlone()
    {
        string directory = Directory.CreateTempSubdirectory("pcm16-").FullName;
        string path = Path.Combine(directory, "answer.wav");
        try
        {
            File.WriteAllText(path, "old contents");

            Assert.ThrowsAny<ArgumentException>(() => Pcm16Wave.WriteFile(path, [0.1f], sampleRate: 0));

            Assert.Equal("old contents", File.ReadAllText(path));
            Assert.Equal(new[] { path }, Directory.GetFiles(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
