using System.Text;
using MiniOmni.SK.ModelFiles.Checkpoints;
using Razorvine.Pickle;
using static MiniOmni.SK.ModelFiles.Tests.Checkpoints.TestCheckpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

/// <summary>
/// Issue 18's checkpoint class: zips that lie about their sizes, CRCs that do not match, central directories that are
/// broken, pickles that nest, build without bound or hold the wrong types. Each is a <see cref="ModelFileException"/>
/// naming the file and the entry, tensor or key, found before memory is spent on it.
/// </summary>
public sealed class HostileCheckpointTests : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(0xFFFFFFFFL)]
    [InlineData(0x7FFFFFC8L)]
    public void AnEntryDeclaringGigabytesIsRefusedBeforeAnythingIsAllocated(long declared)
    {
        byte[] pickle = StateDict(("w", [1, 2]));
        string path = Zip("declared.pth", RawZip.Stored("archive/data.pkl", pickle) with { DeclaredLength = declared }, Storage("0", 1f, 2f));
        long before = GC.GetAllocatedBytesForCurrentThread();

        var error = Open(path);

        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the declared size was allocated");
        Assert.Contains("data.pkl", error.Message);
    }

    [Fact]
    public void APickleInflatingToAGigabyteIsRefusedByItsDeclaredSize()
    {
        const long Gigabyte = 1L << 30;
        byte[] bomb = RawZip.DeflatedZeros(Gigabyte);
        string path = Zip("bomb.pth", new RawZip.Entry("archive/data.pkl", bomb, Deflated: true, Crc32: 0, Gigabyte));
        long before = GC.GetAllocatedBytesForCurrentThread();

        var error = Open(path);

        Assert.True(new FileInfo(path).Length < 8 << 20);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the bomb was inflated");
        Assert.Equal("archive/data.pkl", error.Key);
        Assert.Contains($"{Gigabyte}", error.Message);
    }

    [Fact]
    public void AnEntryThatInflatesPastItsDeclaredSizeIsRefusedWithoutInflatingIt()
    {
        string path = Zip("liar.pth", new RawZip.Entry("archive/data.pkl", RawZip.DeflatedZeros(1L << 30), Deflated: true, Crc32: 0, DeclaredLength: 1000));
        long before = GC.GetAllocatedBytesForCurrentThread();

        var error = Open(path);

        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the entry was inflated whole");
        Assert.Equal("archive/data.pkl", error.Key);
        // .NET stops inflating at the declared length, and the CRC of those bytes does not match; a reader that kept going would see more.
        Assert.Matches("CRC-32|more bytes", error.Message);
    }

    [Fact]
    public void ABrokenCentralDirectoryIsNamedNotAnInvalidDataException()
    {
        string path = Zip("directory.pth", RawZip.Stored("archive/data.pkl", StateDict(("w", [1]))), Storage("0", 1f));
        byte[] bytes = File.ReadAllBytes(path);
        int directory = bytes.AsSpan().LastIndexOf("PK\u0001\u0002"u8);
        bytes[directory + 28] = 0xFF; // the first entry's name length, now past the end of the directory
        bytes[directory + 29] = 0x7F;
        File.WriteAllBytes(path, bytes);

        var error = Open(path);

        Assert.Contains("not a readable PyTorch zip", error.Message);
        Assert.Equal(directory, error.Offset); // the file header whose name runs past the directory
        Assert.IsNotType<InvalidDataException>(error);
    }

    [Fact]
    public void AStorageFailingItsCrcIsNamedWithItsTensor()
    {
        var storage = Storage("0", 1f, 2f, 3f);
        var corrupt = storage with { Stored = [.. storage.Stored] };
        corrupt.Stored[5] ^= 0x40;
        string path = Zip("crc.pth", RawZip.Stored("archive/data.pkl", StateDict(("w", [3]))), corrupt);
        using var checkpoint = TorchCheckpoint.Open(path);

        var error = Assert.Throws<ModelFileException>(() => checkpoint.Get("w").ReadFloat32());

        Assert.Equal("w", error.Key);
        Assert.Contains("CRC-32", error.Message);
    }

    [Fact]
    public void APickleFailingItsCrcIsRefusedAtOpen()
    {
        var entry = RawZip.Stored("archive/data.pkl", StateDict(("w", [1])));
        var corrupt = entry with { Stored = [.. entry.Stored] };
        corrupt.Stored[Array.IndexOf(corrupt.Stored, (byte)'w')] = (byte)'v';

        var error = Open(Zip("pickle-crc.pth", corrupt, Storage("0", 1f)));

        Assert.Equal("archive/data.pkl", error.Key);
        Assert.Contains("CRC-32", error.Message);
    }

    [Fact]
    public void ADeeplyNestedPickleIsReadWithoutRecursionAndItsMissingKeysAreNamed()
    {
        // {"dims": {"a": {"a": ... 200,000 deep}}, "model_state_dict": {}}: a stack overflow after 22 s and 3.6 GB, before.
        const int Depth = 200_000;
        var pickle = new PickleBuilder().Op((byte)'}').String("model_state_dict").Op((byte)'}').Op((byte)'s').String("dims");
        for (int i = 0; i < Depth; i++)
        {
            pickle.Op((byte)'}').String("a");
        }

        pickle.Op((byte)'N');
        for (int i = 0; i <= Depth; i++)
        {
            pickle.Op((byte)'s');
        }

        string path = Zip("nested.pt", RawZip.Stored("archive/data.pkl", pickle.Op((byte)'.').ToArray()));
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var error = Assert.Throws<ModelFileException>(() => WhisperCheckpoint.Open(path));

        Assert.Equal("dims.n_mels", error.Key);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{clock.Elapsed}");
    }

    [Fact]
    public void APickleBuildingMoreObjectsThanAStateDictCouldIsRefusedBeforeUnpickling()
    {
        var pickle = new PickleBuilder();
        for (int i = 0; i <= PickleAllowList.MaxObjects; i++)
        {
            pickle.Op((byte)']').Op((byte)'0');
        }

        var error = Open(Zip("objects.pth", RawZip.Stored("archive/data.pkl", pickle.Op((byte)'N').Op((byte)'.').ToArray())));

        Assert.Contains("objects", error.Message);
    }

    [Fact]
    public void AHugeDecimalIsRefusedBeforeItIsParsed()
    {
        byte[] pickle = [.. new PickleBuilder().ToArray(), (byte)'L', .. Encoding.ASCII.GetBytes(new string('9', 100_000)), (byte)'\n', (byte)'.'];

        var error = Open(Zip("number.pth", RawZip.Stored("archive/data.pkl", pickle)));

        Assert.Contains("number", error.Message);
    }

    [Fact]
    public void ATensorUnderAKeyThatIsNotAStringIsNamed()
    {
        var pickle = new PickleBuilder().Op((byte)'}').Int(5).Global("torch._utils", "_rebuild_tensor_v2").Op((byte)'(');
        pickle.Op((byte)'(').String("storage").Global("torch", "FloatStorage").String("0").String("cpu").Int(1).Op((byte)'t').Op((byte)'Q');
        pickle.Int(0).Tuple(1).Tuple(1).Op(0x89).Global("collections", "OrderedDict").Op((byte)')').Op((byte)'R').Op((byte)'t').Op((byte)'R').Op((byte)'s');

        var error = Open(Zip("key.pth", RawZip.Stored("archive/data.pkl", pickle.Op((byte)'.').ToArray()), Storage("0", 1f)));

        Assert.Equal("5", error.Key);
        Assert.Contains("not a string", error.Message);
    }

    [Theory]
    [InlineData("80")]
    [InlineData(80.5)]
    public void NonIntegerWhisperDimsAreNamed(object value)
    {
        var pickle = new PickleBuilder().Op((byte)'}').String("model_state_dict").Op((byte)'}').Op((byte)'s').String("dims").Op((byte)'}').String("n_mels");
        _ = value is string text ? pickle.String(text) : pickle.Float((double)value);
        pickle.Op((byte)'s').Op((byte)'s');

        var error = Assert.Throws<ModelFileException>(() => WhisperCheckpoint.Open(Zip("dims.pt", RawZip.Stored("archive/data.pkl", pickle.Op((byte)'.').ToArray()))));

        Assert.Equal("dims.n_mels", error.Key);
        Assert.Contains("integer", error.Message);
    }

    [Fact]
    public void ATensorShapeOverflowingALongIsNamed()
    {
        var pickle = new PickleBuilder().Op((byte)'}').Tensor("w", "FloatStorage", "0", 1, 0, [int.MaxValue, int.MaxValue, int.MaxValue], [0, 0, 0]).Op((byte)'.');

        var error = Open(Zip("overflow.pth", RawZip.Stored("archive/data.pkl", pickle.ToArray()), Storage("0", 1f)));

        Assert.Contains("more elements", error.Message);
    }

    [Fact]
    public void AStorageShorterThanItsDeclaredElementsIsNamedBeforeItsTensorIsAllocated()
    {
        // The pickle says the storage has 2^28 floats (1 GB); the zip holds four bytes of it.
        var pickle = new PickleBuilder().Op((byte)'}').Tensor("w", "FloatStorage", "0", 1 << 28, 0, [1 << 14, 1 << 14], [1 << 14, 1]).Op((byte)'.');
        string path = Zip("short.pth", RawZip.Stored("archive/data.pkl", pickle.ToArray()), Storage("0", 1f));
        using var checkpoint = TorchCheckpoint.Open(path);
        long before = GC.GetAllocatedBytesForCurrentThread();

        var error = Assert.Throws<ModelFileException>(() => checkpoint.Get("w").ReadFloat32());

        Assert.Equal("w", error.Key);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the tensor was allocated first");
    }

    [Fact]
    public void ReadingCheckpointsRegistersNothingInRazorvinesProcessWideTable()
    {
        using (var checkpoint = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth")))
        {
            Assert.NotEmpty(checkpoint.Tensors);
        }

        // Another user of Razorvine in the process still gets Razorvine's own behaviour for these globals.
        byte[] orderedDict = new PickleBuilder().Global("collections", "OrderedDict").Op((byte)')').Op((byte)'R').Op((byte)'.').ToArray();
        byte[] rebuild = new PickleBuilder().Global("torch._utils", "_rebuild_tensor_v2").Op((byte)'(').Int(1).Op((byte)'t').Op((byte)'R').Op((byte)'.').ToArray();
        using var unpickler = new Unpickler();
        Assert.IsType<Razorvine.Pickle.Objects.ClassDict>(unpickler.loads(orderedDict));
        Assert.Throws<PickleException>(() => unpickler.loads(rebuild));
    }

    [Fact]
    public void ConcurrentDisposeOfACheckpointIsSafe()
    {
        var checkpoint = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        var tensor = checkpoint.Get("transformer.ln_f.weight");

        Parallel.For(0, 16, _ => checkpoint.Dispose());

        Assert.Throws<ObjectDisposedException>(() => tensor.ReadFloat32());
    }

    [Fact]
    public void ConcurrentDisposeOfASafetensorsFileIsSafe()
    {
        string path = WriteSafetensors(Path.Combine(_directory.Path, "m.safetensors"), [("w", "F32", [2], Floats(1f, 2f))]);
        var checkpoint = SafetensorsCheckpoint.Open(path);
        var tensor = checkpoint.Get("w");

        Parallel.For(0, 16, _ => checkpoint.Dispose());

        Assert.Throws<ObjectDisposedException>(() => tensor.ReadFloat32());
    }

    private static byte[] StateDict(params (string Name, int[] Shape)[] tensors)
    {
        var pickle = new PickleBuilder().Op((byte)'}');
        int key = 0;
        foreach (var (name, shape) in tensors)
        {
            int elements = shape.Aggregate(1, (a, b) => a * b);
            int[] stride = [.. shape.Select((_, d) => shape.Skip(d + 1).Aggregate(1, (a, b) => a * b))];
            pickle.Tensor(name, "FloatStorage", (key++).ToString(System.Globalization.CultureInfo.InvariantCulture), elements, 0, shape, stride);
        }

        return pickle.Op((byte)'.').ToArray();
    }

    private static RawZip.Entry Storage(string key, params float[] values) => RawZip.Stored($"archive/data/{key}", Floats(values));

    private string Zip(string name, params RawZip.Entry[] entries) => RawZip.Write(Path.Combine(_directory.Path, name), entries);

    private static ModelFileException Open(string path)
    {
        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path).Dispose());
        Assert.Equal(path, error.FilePath);
        return error;
    }
}
