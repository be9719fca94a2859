using MiniOmni.SK.ModelFiles.Checkpoints;
using static MiniOmni.SK.ModelFiles.Tests.Checkpoints.TestCheckpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

/// <summary>Bad checkpoint files: each is refused with an error naming the file and the tensor, key or global.</summary>
public sealed class CheckpointErrorTests
{
    [Fact]
    public void AMissingFileIsNamed()
    {
        string path = Path.Combine(Path.GetTempPath(), "no-such-checkpoint.pth");
        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));
        Assert.Equal(path, error.FilePath);
        Assert.Contains("not found", error.Message);
    }

    [Fact]
    public void ATruncatedZipIsRefused()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "truncated.pth");
        byte[] whole = File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        File.WriteAllBytes(path, whole[..(whole.Length / 2)]);

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Equal(path, error.FilePath);
        Assert.Contains("truncated or corrupt", error.Message);
    }

    [Theory]
    [InlineData("os", "system")]
    [InlineData("builtins", "eval")]
    [InlineData("subprocess", "Popen")]
    public void AHostilePickleGlobalIsRefusedBeforeAnythingIsBuilt(string module, string name)
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        // The classic payload: os.system("touch PWNED") through REDUCE.
        string marker = Path.Combine(directory.Path, "PWNED");
        byte[] pickle = new PickleBuilder().Global(module, name).Op((byte)'(').String($"touch {marker}").Op((byte)'t').Op((byte)'R').Op((byte)'.').ToArray();
        string path = WriteTorchZip(directory.Path, "hostile.pth", pickle);

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Equal($"{module}.{name}", error.Key);
        Assert.Contains(path, error.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void ObjectBuildingOpcodesOutsideGlobalsAreRefused()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        // INST builds an instance from an inline module and name, bypassing GLOBAL.
        byte[] pickle = new PickleBuilder().Op((byte)'(').Op((byte)'i').ToArray()
            .Concat(System.Text.Encoding.UTF8.GetBytes("os\nsystem\n.")).ToArray();
        string path = WriteTorchZip(directory.Path, "inst.pth", pickle);

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Contains("opcode 0x69", error.Message);
    }

    [Fact]
    public void AnUnsupportedDtypeIsNamed()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        byte[] pickle = new PickleBuilder().Op((byte)'}').Tensor("steps", "LongStorage", "0", 1, 0, [1], [1]).Op((byte)'.').ToArray();
        string path = WriteTorchZip(directory.Path, "long.pth", pickle, new Dictionary<string, byte[]> { ["0"] = new byte[8] });

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Contains("unsupported dtype", error.Message);
        Assert.Equal("torch.LongStorage", error.Key);
    }

    [Fact]
    public void AWrongShapeIsNamedWithBothShapes()
    {
        using var checkpoint = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));

        var error = Assert.Throws<ModelFileException>(() => checkpoint.Get("transformer.ln_f.weight", 64));

        Assert.Equal("transformer.ln_f.weight", error.Key);
        Assert.Contains("expected shape [64], found [32]", error.Message);
    }

    [Fact]
    public void AStorageTooShortForItsTensorIsNamed()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        byte[] pickle = new PickleBuilder().Op((byte)'}').Tensor("w", "FloatStorage", "0", 6, 0, [2, 3], [3, 1]).Op((byte)'.').ToArray();
        string path = WriteTorchZip(directory.Path, "short.pth", pickle, new Dictionary<string, byte[]> { ["0"] = Floats(1, 2, 3) });
        using var checkpoint = TorchCheckpoint.Open(path);

        var error = Assert.Throws<ModelFileException>(() => checkpoint.Get("w").ReadFloat32());

        Assert.Equal("w", error.Key);
        Assert.Contains("truncated", error.Message);
    }

    [Fact]
    public void ATransposedViewIsReadInItsOwnOrder()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        // Storage [[1,2,3],[4,5,6]] seen through size (3,2), stride (1,3): its transpose, saved without a copy.
        byte[] pickle = new PickleBuilder().Op((byte)'}').Tensor("t", "FloatStorage", "0", 7, 1, [3, 2], [1, 3]).Op((byte)'.').ToArray();
        string path = WriteTorchZip(directory.Path, "view.pth", pickle, new Dictionary<string, byte[]> { ["0"] = Floats(0, 1, 2, 3, 4, 5, 6) });
        using var checkpoint = TorchCheckpoint.Open(path);

        Assert.Equal([1f, 4f, 2f, 5f, 3f, 6f], checkpoint.Get("t", 3, 2).ReadFloat32());
    }

    [Fact]
    public void SafetensorsOfEachFloatTypeReadBack()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        float[] values = [0.5f, -2f, 3.25f, 1024f];
        byte[] halves = values.SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray();
        byte[] brains = values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(v) >> 16))).ToArray();
        string path = WriteSafetensors(Path.Combine(directory.Path, "m.safetensors"),
            [("f32", "F32", [2, 2], Floats(values)), ("f16", "F16", [4], halves), ("bf16", "BF16", [1, 4], brains)]);
        using var checkpoint = SafetensorsCheckpoint.Open(path);

        Assert.Equal(values, checkpoint.Get("f32", 2, 2).ReadFloat32());
        Assert.Equal(values, checkpoint.Get("f16", 4).ReadFloat32());
        Assert.Equal(values, checkpoint.Get("bf16", 1, 4).ReadFloat32());
        Assert.Equal("pt", checkpoint.Metadata["format"]);
    }

    [Fact]
    public void SafetensorsWithAnUnsupportedDtypeNameTheTensor()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = WriteSafetensors(Path.Combine(directory.Path, "i64.safetensors"), [("ids", "I64", [1], new byte[8])]);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Equal("ids", error.Key);
        Assert.Contains("I64", error.Message);
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, (byte)'{' })] // a header longer than the file
    [InlineData(new byte[] { 4, 0, 0, 0, 0, 0, 0, 0, (byte)'n', (byte)'o', (byte)'p', (byte)'e' })] // a header that is not JSON
    public void CorruptSafetensorsHeadersAreRefused(byte[] content)
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "bad.safetensors");
        File.WriteAllBytes(path, content);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void AConfigWithoutARequiredKeyNamesIt()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "model_config.yaml");
        File.WriteAllLines(path, File.ReadAllLines(Path.Combine(Fixture.Checkpoint, "model_config.yaml")).Where(l => !l.StartsWith("n_head:", StringComparison.Ordinal)));

        var error = Assert.Throws<ModelFileException>(() => LitGptConfig.Load(path));

        Assert.Equal("n_head", error.Key);
    }
}
