using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Gguf;

public sealed class GgufFileTests
{
    [Fact]
    public void WrittenMetadataAndTensorsReadBack()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "round-trip.gguf");
        float[] matrix = [1, 2, 3, 4, 5, 6];
        new GgufWriter()
            .Add("test.string", "héllo")
            .Add("test.count", 7u)
            .Add("test.signed", -3)
            .Add("test.scale", 0.5f)
            .Add("test.flag", true)
            .Add("test.names", new[] { "a", "b c" })
            .Add("test.rates", new[] { 8, 8, 4, 2 })
            .AddTensor("m", [3, 2], GgmlType.F32, () => matrix)
            .AddTensor("h", [3, 2], GgmlType.F16, () => matrix)
            .WriteTo(path);

        using var file = GgufFile.Open(path);
        Assert.Equal("héllo", file.GetString("test.string"));
        Assert.Equal(7, file.GetInteger("test.count"));
        Assert.Equal(-3, file.GetInteger("test.signed"));
        Assert.Equal(0.5f, file.GetFloat("test.scale"));
        Assert.True(file.GetBool("test.flag", fallback: false));
        Assert.Equal(["a", "b c"], file.GetArray<string>("test.names"));
        Assert.Equal([8, 8, 4, 2], file.GetArray<int>("test.rates"));
        Assert.Equal(matrix, file.ReadFloat32("m"));
        Assert.Equal(matrix, file.ReadFloat32("h"));
        Assert.Equal([3L, 2L], file.GetTensor("m").Dims);
        var row = new float[3];
        file.ReadRow(file.GetTensor("h"), 1, row);
        Assert.Equal([4f, 5f, 6f], row);
        Assert.Equal(0, file.GetTensor("m").DataOffset % GgufWriter.Alignment);
    }

    [Fact]
    public void Q8BlocksRoundTripWithinHalfAStep()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "q8.gguf");
        var random = new Random(5);
        float[] values = [.. Enumerable.Range(0, 64).Select(i => i < 32 ? (float)(random.NextDouble() * 2 - 1) : 0f)];
        new GgufWriter().AddTensor("q", [32, 2], GgmlType.Q8_0, () => values).WriteTo(path);

        using var file = GgufFile.Open(path);
        float[] decoded = file.ReadFloat32("q");

        Assert.Equal(GgmlType.Q8_0, file.GetTensor("q").Type);
        float step = values[..32].Max(MathF.Abs) / 127f;
        for (int i = 0; i < values.Length; i++)
        {
            Assert.True(MathF.Abs(values[i] - decoded[i]) <= step / 2 + 1e-3f * step, $"[{i}] {decoded[i]} vs {values[i]}");
        }

        Assert.Equal(values.Max(MathF.Abs), decoded.Max(MathF.Abs), 1e-3f);
        Assert.All(decoded[32..], v => Assert.Equal(0f, v));
    }

    [Fact]
    public void MissingKeysAndTensorsAreNamed()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "small.gguf");
        new GgufWriter().Add("present", 1u).AddTensor("t", [32], GgmlType.F32, () => new float[32]).WriteTo(path);
        using var file = GgufFile.Open(path);

        var missingKey = Assert.Throws<ModelFileException>(() => file.GetString("absent.key"));
        Assert.Contains("absent.key", missingKey.Message);
        Assert.Contains(path, missingKey.Message);
        var wrongType = Assert.Throws<ModelFileException>(() => file.GetString("present"));
        Assert.Contains("present", wrongType.Message);
        var missingTensor = Assert.Throws<ModelFileException>(() => file.GetTensor("nope"));
        Assert.Equal("nope", missingTensor.Key);
    }

    [Fact]
    public void TruncatedFileIsRefusedWithTheTensorNamed()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "truncated.gguf");
        new GgufWriter().AddTensor("big", [1024], GgmlType.F32, () => new float[1024]).WriteTo(path);
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(stream.Length - 100);
        }

        var error = Assert.Throws<ModelFileException>(() => GgufFile.Open(path));
        Assert.Equal("big", error.Key);
        Assert.Contains("truncated", error.Message);
    }

    [Theory]
    [InlineData(new byte[] { 0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0 })] // a header cut short
    [InlineData(new byte[] { (byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })] // a zip, not a GGUF
    public void NonGgufBytesAreRefused(byte[] content)
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "not.gguf");
        File.WriteAllBytes(path, content);

        var error = Assert.Throws<ModelFileException>(() => GgufFile.Open(path));
        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void AFailingTensorLeavesNoFileBehind()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "failed.gguf");
        var writer = new GgufWriter()
            .AddTensor("fine", [32], GgmlType.F32, () => new float[32])
            .AddTensor("broken", [32], GgmlType.F32, () => throw new InvalidDataException("source went away"));

        Assert.Throws<InvalidDataException>(() => writer.WriteTo(path));

        Assert.Empty(Directory.GetFileSystemEntries(directory.Path));
    }

    [Fact]
    public void InvalidTensorsAreRefusedWhenAdded()
    {
        var writer = new GgufWriter().AddTensor("t", [32], GgmlType.F32, () => new float[32]);

        Assert.Throws<ArgumentException>(() => writer.AddTensor("t", [32], GgmlType.F32, () => new float[32]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor(new string('x', 64), [32], GgmlType.F32, () => new float[32]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("q", [33], GgmlType.Q8_0, _ => { }));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("z", [0], GgmlType.F32, () => []));
    }
}
