using System.Text;
using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Conversion;
using YamlDotNet.Core;
using static MiniOmni.SK.ModelFiles.Tests.Checkpoints.TestCheckpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

/// <summary>
/// A refusal of a damaged original-format file names where the damage is, through <see cref="ModelFileException.Offset"/>
/// (and, in text, <see cref="ModelFileException.Line"/> and <see cref="ModelFileException.Column"/>) or
/// <see cref="ModelFileException.Key"/>, not only the file: where the third-party reader (System.IO.Compression,
/// System.Text.Json, YamlDotNet, Razorvine) says what is wrong but not where, or says it in its own terms, the reader
/// finds the place. The third party's exception stays inside.
/// </summary>
public sealed class ErrorLocationTests : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void AZipWhoseDirectoryIsCutOffNamesWhereItsEndRecordShouldBe()
    {
        string path = Path.Combine(_directory.Path, "cut.pth");
        byte[] whole = File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        File.WriteAllBytes(path, whole[..(whole.Length - 30)]);

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        // The end of central directory record is the zip's last 22 bytes (no comment): it would start there.
        Assert.Equal(whole.Length - 30 - 22, error.Offset);
        Assert.Contains($"at byte {error.Offset}", error.Message);
        Assert.IsType<InvalidDataException>(error.InnerException);
    }

    [Fact]
    public void AZipWithADamagedFileHeaderNamesTheHeadersByte()
    {
        string path = WriteTorchZip(_directory.Path, "header.pth", new PickleBuilder().Op((byte)'}').Op((byte)'.').ToArray(), new Dictionary<string, byte[]> { ["0"] = Floats(1f) });
        byte[] bytes = File.ReadAllBytes(path);
        int second = bytes.AsSpan().LastIndexOf("PK\u0001\u0002"u8);
        bytes[second + 1] = (byte)'X'; // the second central directory file header's signature
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Equal(second, error.Offset);
        Assert.Equal($"byte {second}", error.Location);
    }

    [Fact]
    public void APickleRazorvineRefusesNamesTheEntryAndTheOpcodesEnd()
    {
        // PROTO 2, EMPTY_DICT, APPEND (to a list that is not on the stack), STOP: allow-listed opcodes, but no state dict.
        string path = WriteTorchZip(_directory.Path, "append.pth", new PickleBuilder().Op((byte)'}').Op((byte)'a').Op((byte)'.').ToArray());

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Equal("archive/data.pkl", error.Key);
        Assert.Equal(4, error.Offset); // APPEND is the byte at 3: Razorvine stopped after it
        Assert.Equal("'archive/data.pkl' at byte 4", error.Location);
        Assert.NotNull(error.InnerException);
    }

    [Fact]
    public void APickleOpcodeTheAllowListDoesNotKnowNamesTheEntryAndTheOpcode()
    {
        string path = WriteTorchZip(_directory.Path, "opcode.pth", new PickleBuilder().Op((byte)'}').Op(0xF0).Op((byte)'.').ToArray());

        var error = Assert.Throws<ModelFileException>(() => TorchCheckpoint.Open(path));

        Assert.Equal("archive/data.pkl", error.Key);
        Assert.Equal(3, error.Offset);
    }

    [Fact]
    public void ASafetensorsHeaderThatIsNotJsonNamesTheByteInTheFile()
    {
        string path = Path.Combine(_directory.Path, "syntax.safetensors");
        byte[] json = """{"w": #}""".Select(c => (byte)c).ToArray();
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json]);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Equal(8 + Array.IndexOf(json, (byte)'#'), error.Offset);
        Assert.IsAssignableFrom<System.Text.Json.JsonException>(error.InnerException);
    }

    [Fact]
    public void ASafetensorsHeaderLengthPastTheFileNamesItsField()
    {
        string path = Path.Combine(_directory.Path, "length.safetensors");
        File.WriteAllBytes(path, [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, (byte)'{']);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Equal(0, error.Offset);
    }

    [Fact]
    public void AJsonConfigSyntaxErrorNamesItsByteLineAndColumn()
    {
        string path = Path.Combine(_directory.Path, "config.json");
        string text = "{\n  \"name\": \"wh\u00efsper\",\n  \"d_model\": #\n}\n";
        File.WriteAllText(path, text);
        byte[] bytes = File.ReadAllBytes(path);

        var error = Assert.Throws<ModelFileException>(() => WhisperDims.FromHuggingFace(path));

        Assert.Equal(Array.IndexOf(bytes, (byte)'#'), error.Offset);
        Assert.Equal(3, error.Line);
        Assert.Equal(14, error.Column);
        Assert.IsAssignableFrom<System.Text.Json.JsonException>(error.InnerException);
    }

    [Fact]
    public void AJsonConfigThatIsNotAnObjectNamesItsRootValue()
    {
        string path = Path.Combine(_directory.Path, "snac-config.json");
        File.WriteAllText(path, "\n  [1, 2]");

        var error = Assert.Throws<ModelFileException>(() => SnacConfig.Load(path));

        Assert.Equal(3, error.Offset);
        Assert.Equal(2, error.Line);
        Assert.Equal(3, error.Column);
    }

    [Fact]
    public void ATokenizerSyntaxErrorNamesItsByte()
    {
        string path = Path.Combine(_directory.Path, "tokenizer.json");
        byte[] bytes = """{"model": {"type": "BPE", "vocab": {"a": 0,, "b": 1}}}"""u8.ToArray();
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<ModelFileException>(() => HfTokenizer.Load(path, 8));

        Assert.Equal(bytes.AsSpan().IndexOf(",,"u8) + 1, error.Offset);
        Assert.Equal(1, error.Line);
    }

    [Fact]
    public void AYamlSyntaxErrorNamesItsByteNotItsCharacter()
    {
        string path = Path.Combine(_directory.Path, "model_config.yaml");
        // Two-byte characters before the fault: YamlDotNet counts characters, the error names bytes.
        string text = "name: \u00e9\u00e9\u00e9\nn_layer: 2\nn_head: \"unterminated\n";
        File.WriteAllText(path, text);

        var error = Assert.Throws<ModelFileException>(() => LitGptConfig.Load(path));

        var yaml = Assert.IsAssignableFrom<YamlException>(error.InnerException);
        Assert.Equal(Encoding.UTF8.GetByteCount(text[..(int)yaml.Start.Index]), error.Offset);
        Assert.Equal(yaml.Start.Index + 3, error.Offset);
        Assert.Equal(yaml.Start.Line, error.Line);
        Assert.Equal(yaml.Start.Column, error.Column);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void ACheckpointTooShortToTellItsFormatNamesWhereItEnds(int length)
    {
        // Found by CsCheck_Iter=2000 (seed b6NZjQJSnsp1): a truncation to nothing named the file alone.
        string path = Path.Combine(_directory.Path, "pytorch_model.bin");
        File.WriteAllBytes(path, [.. "P"u8.ToArray().Take(length)]);

        var error = Assert.Throws<ModelFileException>(() => TensorCheckpointExtensions.OpenAny(path));

        Assert.Equal(length, error.Offset);
    }
}
