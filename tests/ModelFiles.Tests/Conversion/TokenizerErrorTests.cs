using System.Text;
using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Conversion;
using static MiniOmni.SK.ModelFiles.Tests.Checkpoints.TestCheckpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Conversion;

/// <summary>
/// Issue 18's tokenizer.json and safetensors class: wrong JSON types, missing fields and malformed entries are a
/// <see cref="ModelFileException"/> naming the file and the field, not a FormatException, IndexOutOfRangeException or
/// KeyNotFoundException.
/// </summary>
public sealed class TokenizerErrorTests : IDisposable
{
    private const string Vocab = """{"a": 0, "b": 1, "ab": 2}""";
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void AWellFormedTokenizerLoads()
    {
        var tokenizer = HfTokenizer.Load(Tokenizer(Vocab, """["a b"]""", """[{"id": 3, "content": "<|endoftext|>", "special": true}]"""), 8);

        Assert.Equal(["a", "b", "ab", "<|endoftext|>", "[PAD4]", "[PAD5]", "[PAD6]", "[PAD7]"], tokenizer.Tokens);
        Assert.Equal(["a b"], tokenizer.Merges);
    }

    [Theory]
    [InlineData("""{"a": "0"}""", "[]", "[]", "model.vocab")] // an id as a string
    [InlineData("""["a"]""", "[]", "[]", "model.vocab")] // the vocab as a list
    [InlineData("""{"a": 0.5}""", "[]", "[]", "model.vocab")]
    [InlineData("""{"a": 99}""", "[]", "[]", "model.vocab")] // outside the rows
    [InlineData("""{"a": 0, "a": 1}""", "[]", "[]", "model.vocab")] // one text, two ids
    [InlineData(Vocab, """["a"]""", "[]", "model.merges[0]")] // a one-part merge
    [InlineData(Vocab, """[["a"]]""", "[]", "model.merges[0]")] // a one-element pair
    [InlineData(Vocab, """["a b c"]""", "[]", "model.merges[0]")]
    [InlineData(Vocab, """[[1, 2]]""", "[]", "model.merges[0]")]
    [InlineData(Vocab, """{"a": "b"}""", "[]", "model.merges")]
    [InlineData(Vocab, "[]", """[{"id": 3}]""", "added_tokens[0]")] // no content
    [InlineData(Vocab, "[]", """[{"content": "x"}]""", "added_tokens[0]")] // no id
    [InlineData(Vocab, "[]", """[{"content": 5, "id": 3}]""", "added_tokens[0]")]
    [InlineData(Vocab, "[]", """[{"content": "x", "id": "3"}]""", "added_tokens[0]")]
    [InlineData(Vocab, "[]", """[17]""", "added_tokens[0]")]
    [InlineData(Vocab, "[]", """{"x": 3}""", "added_tokens")]
    [InlineData(Vocab, "[]", """[{"content": "\ud800", "id": 3}]""", "added_tokens[0]")] // a lone surrogate
    public void MalformedEntriesAreNamed(string vocab, string merges, string added, string key)
    {
        string path = Tokenizer(vocab, merges, added);

        var error = Assert.Throws<ModelFileException>(() => HfTokenizer.Load(path, 8));

        Assert.Equal(path, error.FilePath);
        Assert.Equal(key, error.Key);
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("""{"model": []}""")]
    [InlineData("""{"model": {"type": 5}}""")]
    [InlineData("""{"model": {"type": "BPE"}}""")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {}, "merges": []}""")] // cut short
    public void FilesThatAreNotATokenizerAreRefused(string json)
    {
        string path = Path.Combine(_directory.Path, $"{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);

        var error = Assert.Throws<ModelFileException>(() => HfTokenizer.Load(path, 8));

        Assert.Equal(path, error.FilePath);
    }

    [Theory]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}""", "w")] // offsets of the wrong length
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}""", "w")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}""", "w")]
    [InlineData("""{"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}""", "w")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}""", "w")]
    [InlineData("""{"w": {"dtype": 0, "shape": [1], "data_offsets": [0, 4]}}""", "w")]
    [InlineData("""{"w": {"shape": [1], "data_offsets": [0, 4]}}""", "w")] // no dtype
    [InlineData("""{"w": {"dtype": "F32", "data_offsets": [0, 4]}}""", "w")] // no shape
    [InlineData("""{"w": [1, 2]}""", "w")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}""", "w")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}}""", "w")] // an element count that overflows
    [InlineData("""{"__metadata__": [1]}""", "__metadata__")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", "w")]
    public void MalformedSafetensorsHeadersNameTheTensor(string header, string key)
    {
        string path = Path.Combine(_directory.Path, $"{Guid.NewGuid():N}.safetensors");
        byte[] json = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json, .. Floats(1f, 2f)]);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Equal(path, error.FilePath);
        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void ASafetensorsHeaderThatIsNotAnObjectIsRefused()
    {
        string path = Path.Combine(_directory.Path, "array.safetensors");
        byte[] json = "[1, 2]"u8.ToArray();
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json]);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Contains("not an object", error.Message);
    }

    private string Tokenizer(string vocab, string merges, string added)
    {
        string path = Path.Combine(_directory.Path, $"{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$$"""{"added_tokens": {{{added}}}, "model": {"type": "BPE", "vocab": {{{vocab}}}, "merges": {{{merges}}} } }""");
        return path;
    }
}
