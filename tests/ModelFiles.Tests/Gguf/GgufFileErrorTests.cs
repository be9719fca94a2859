using System.Buffers.Binary;
using System.Text;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Gguf;

/// <summary>Corrupt GGUF headers and tables (issue 18): each is a <see cref="ModelFileException"/> naming the file and the key or tensor.</summary>
public sealed class GgufFileErrorTests : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void ATensorOffsetNearTwoToTheSixtyFourIsNamedNotAnOverflow()
    {
        var editor = TwoTensors();
        byte[] bytes = editor.ToBytes();
        // The first tensor's offset field: after the 24-byte header, its name, dimension count, one dimension and type.
        int at = 24 + 8 + "first".Length + 4 + 8 + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at), ulong.MaxValue - 15);

        var error = OpenBytes(bytes);

        Assert.Equal("first", error.Key);
        Assert.Contains("offset", error.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AnF32TensorRelabelledF16IsRefusedAndNamed(bool last)
    {
        string relabelled = last ? "second" : "first";
        var editor = TwoTensors().Change(relabelled, t => t with { Type = GgmlType.F16 });

        var error = OpenBytes(editor.ToBytes());

        Assert.Equal(relabelled, error.Key);
        Assert.Contains("relabelled", error.Message);
    }

    [Fact]
    public void AnF16TensorRelabelledF32RunsIntoTheNextAndIsRefused()
    {
        var editor = TwoTensors().Retype("first", GgmlType.F16).Change("first", t => t with { Type = GgmlType.F32 });

        var error = OpenBytes(editor.ToBytes());

        Assert.Equal("first", error.Key);
    }

    [Fact]
    public void AnArrayCountIsBoundedByBytesPerElementBeforeAnythingIsAllocated()
    {
        // An array of u64 claiming a quarter as many elements as the file has bytes: 2x the file in memory, were it believed.
        var editor = new GgufEditor().Set("test.big", new ulong[] { 1, 2, 3 });
        editor.Tensors.Add(new EditableTensor("pad", [1 << 20], GgmlType.F32, new byte[4 << 20]));
        byte[] bytes = editor.ToBytes();
        int countAt = 24 + 8 + "test.big".Length + 4 + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(countAt), (ulong)bytes.Length / 4);
        long before = GC.GetAllocatedBytesForCurrentThread();

        var error = OpenBytes(bytes);

        Assert.Equal("test.big", error.Key);
        Assert.Contains("cannot fit", error.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < bytes.Length / 2, "the count was believed");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(48u)]
    public void AnAlignmentThatIsNotAPowerOfTwoIsNamed(uint alignment)
    {
        var error = OpenBytes(TwoTensors().Set("general.alignment", alignment).ToBytes());

        Assert.Equal("general.alignment", error.Key);
    }

    [Fact]
    public void AnAlignmentOfAnotherTypeIsNamedWhereGgmlWouldAbort()
    {
        var error = OpenBytes(TwoTensors().Set("general.alignment", 32).ToBytes());

        Assert.Equal("general.alignment", error.Key);
        Assert.Contains("u32", error.Message);
    }

    [Fact]
    public void AKeyThatAppearsTwiceIsNamed()
    {
        var editor = TwoTensors();
        editor.Metadata.Add(KeyValuePair.Create("twice", (object)1u));
        editor.Metadata.Add(KeyValuePair.Create("twice", (object)2u));

        Assert.Equal("twice", OpenBytes(editor.ToBytes()).Key);
    }

    [Fact]
    public void AStringThatIsNotUtf8IsRefused()
    {
        byte[] bytes = TwoTensors().Set("test.text", "abcd").ToBytes();
        int at = bytes.AsSpan().IndexOf("abcd"u8);
        bytes[at + 1] = 0xC0;

        var error = OpenBytes(bytes);

        Assert.Contains("UTF-8", error.Message);
    }

    [Fact]
    public void ARowThatDoesNotFillWholeBlocksIsNamed()
    {
        var editor = new GgufEditor();
        editor.Tensors.Add(new EditableTensor("q", [48, 2], GgmlType.Q8_0, new byte[3 * 34]));

        var error = OpenBytes(editor.ToBytes());

        Assert.Equal("q", error.Key);
        Assert.Contains("blocks", error.Message);
    }

    [Fact]
    public void AnUnknownTensorTypeIsNamed()
    {
        var editor = TwoTensors().Change("second", t => t with { Type = (GgmlType)77 });

        Assert.Equal("second", OpenBytes(editor.ToBytes()).Key);
    }

    [Fact]
    public void TensorBytesOfAnotherFileAreRefusedNotRead()
    {
        string path = Path.Combine(_directory.Path, "own.gguf");
        TwoTensors().Save(path);
        using var file = GgufFile.Open(path);
        var forged = file.GetTensor("first") with { DataOffset = 1L << 40 };

        Assert.Throws<ArgumentException>(() => file.GetTensorBytes(forged).Length);
        Assert.Throws<ArgumentException>(() => file.ReadRow(forged, 0, new float[16]));
    }

    [Fact]
    public void ConcurrentDisposeReleasesTheMapOnce()
    {
        string path = Path.Combine(_directory.Path, "dispose.gguf");
        TwoTensors().Save(path);
        var file = GgufFile.Open(path);

        Parallel.For(0, 16, _ => file.Dispose());

        Assert.Throws<ObjectDisposedException>(() => file.ReadFloat32("first"));
    }

    private static GgufEditor TwoTensors()
    {
        var editor = new GgufEditor();
        editor.Tensors.Add(new EditableTensor("first", [16], GgmlType.F32, Floats(16)));
        editor.Tensors.Add(new EditableTensor("second", [16], GgmlType.F32, Floats(16)));
        return editor;
    }

    private static byte[] Floats(int count)
    {
        var bytes = new byte[count * 4];
        Buffer.BlockCopy(Enumerable.Range(1, count).Select(i => i * 0.25f).ToArray(), 0, bytes, 0, bytes.Length);
        return bytes;
    }

    private ModelFileException OpenBytes(byte[] bytes)
    {
        string path = Path.Combine(_directory.Path, $"{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<ModelFileException>(() => GgufFile.Open(path).Dispose());
        Assert.Equal(path, error.FilePath);
        Assert.Contains(path, error.Message);
        return error;
    }
}
