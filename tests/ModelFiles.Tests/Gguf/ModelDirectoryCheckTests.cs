using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Gguf;

/// <summary>
/// Issue 18's backbone, vocabulary and audio.gguf classes: a converted model with one value, tensor or type changed is
/// refused by <see cref="ModelDirectory.Check"/> (which the engine runs before llama.cpp or ggml see a byte) with an
/// error naming the file and the key or tensor.
/// </summary>
public sealed class ModelDirectoryCheckTests(SmallModel small) : IClassFixture<SmallModel>, IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void TheUntouchedModelPasses()
    {
        var checkedModel = small.Model.Check();

        Assert.Equal(2, checkedModel.Backbone.LayerCount);
        Assert.Equal(1024, checkedModel.VocabularyRows);
        Assert.Equal(64, checkedModel.Audio.AdapterIntermediateSize);
    }

    [Theory]
    [InlineData(ModelFileType.F16)]
    [InlineData(ModelFileType.Q8_0)]
    [InlineData(ModelFileType.Q4_K_M)]
    [InlineData(ModelFileType.Q4_0)]
    [InlineData(ModelFileType.IQ4_NL)]
    [InlineData(ModelFileType.Q4_0_Mixed)]
    public void EveryModelTypeMiniOmniWritesPasses(ModelFileType type)
    {
        // The quantized backbones come from llama.cpp's quantizer, with its own keys and tensor types.
        var model = ModelSetWriter.WriteSynthetic(Path.Combine(_directory.Path, type.ToName()), SmallModel.Preset, type, seed: 3);

        var checkedModel = model.Check();

        Assert.Equal(type, checkedModel.Audio.Description.FileType);
    }

    [Theory]
    [InlineData("qwen2.block_count", 0u)]
    [InlineData("qwen2.block_count", 100_000u)]
    [InlineData("qwen2.attention.head_count", 5u)] // does not divide the width of 32
    [InlineData("qwen2.attention.head_count", 0u)]
    [InlineData("qwen2.attention.head_count_kv", 3u)] // does not divide 4 heads
    [InlineData("qwen2.attention.key_length", 0u)]
    [InlineData("qwen2.attention.value_length", 16u)]
    [InlineData("qwen2.embedding_length", 0u)]
    [InlineData("qwen2.feed_forward_length", 0u)]
    [InlineData("qwen2.context_length", 0u)]
    [InlineData("qwen2.attention.layer_norm_rms_epsilon", -1e-6f)]
    [InlineData("qwen2.attention.layer_norm_rms_epsilon", float.NaN)]
    [InlineData("qwen2.rope.freq_base", 0f)]
    [InlineData("qwen2.block_count", 2)] // an i32 where llama.cpp reads a u32
    [InlineData("qwen2.rope.scaling.type", "bogus")] // a key llama.cpp acts on (and asserts on) that MiniOmni.SK never writes
    [InlineData("tokenizer.ggml.model", "gpt2")]
    public void BackboneHyperparametersLlamaCppAssertsOnAreNamed(string key, object value)
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.BackboneFileName, editor => editor.Set(key, value));

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal(model.BackbonePath, error.FilePath);
        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void ABlockCountBeyondTheTensorsNamesTheMissingTensor()
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.BackboneFileName, editor => editor.Set("qwen2.block_count", 3u));

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal("blk.2.attn_norm.weight", error.Key);
    }

    [Fact]
    public void AnF16NormWhereTheGraphNeedsF32IsNamed()
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.BackboneFileName, editor => editor.Retype("blk.1.attn_norm.weight", GgmlType.F16));

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal("blk.1.attn_norm.weight", error.Key);
        Assert.Contains("F16", error.Message);
    }

    [Fact]
    public void AMisshapenAndAnExtraTensorAreNamed()
    {
        var misshapen = small.CopyWith(_directory.Path, ModelDirectory.BackboneFileName, editor => editor.Change("blk.0.ffn_up.weight", t => t with { Dims = [64, 32] }));
        var extra = small.CopyWith(_directory.Path, ModelDirectory.BackboneFileName, editor => editor.Tensors.Add(new EditableTensor("blk.9.attn_norm.weight", [32], GgmlType.F32, new byte[128])));

        Assert.Equal("blk.0.ffn_up.weight", Assert.Throws<ModelFileException>(() => misshapen.Check()).Key);
        Assert.Equal("blk.9.attn_norm.weight", Assert.Throws<ModelFileException>(() => extra.Check()).Key);
    }

    [Fact]
    public void TensorDataPastTheEndOfATruncatedBackboneIsNamed()
    {
        var model = small.Copy(_directory.Path);
        using (var stream = new FileStream(model.BackbonePath, FileMode.Open))
        {
            stream.SetLength(stream.Length - 1000);
        }

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal(model.BackbonePath, error.FilePath);
        Assert.Contains("past the end", error.Message);
        Assert.NotNull(error.Key);
    }

    [Fact]
    public void TwoTokensOfOneTextAreNamedWhereLlamaCppWouldAbort()
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.VocabularyFileName, editor =>
        {
            string[] tokens = [.. (string[])editor.Get("tokenizer.ggml.tokens")];
            tokens[700] = tokens[65];
            editor.Set("tokenizer.ggml.tokens", tokens);
        });

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal(model.VocabularyPath, error.FilePath);
        Assert.Equal("tokenizer.ggml.tokens", error.Key);
        Assert.Contains("65 and 700", error.Message);
    }

    [Theory]
    [InlineData("tokenizer.ggml.token_type")] // fewer types than tokens: llama.cpp reads past the array
    [InlineData("tokenizer.ggml.tokens")] // an array of numbers where strings are read
    [InlineData("tokenizer.ggml.eos_token_id")]
    [InlineData("tokenizer.ggml.merges")]
    [InlineData("tokenizer.ggml.scores")] // a key never written, which llama.cpp reads by the token count
    public void BrokenTokenizerKeysAreNamed(string key)
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.VocabularyFileName, editor =>
        {
            switch (key)
            {
                case "tokenizer.ggml.token_type": editor.Set(key, ((int[])editor.Get(key))[..100]); break;
                case "tokenizer.ggml.tokens": editor.Set(key, new int[1024]); break;
                case "tokenizer.ggml.eos_token_id": editor.Set(key, 5000u); break;
                case "tokenizer.ggml.merges": editor.Set(key, new[] { "a b", "nospace" }); break;
                default: editor.Set(key, new float[3]); break;
            }
        });

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void AVocabularyOfAnotherModelIsRefused()
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.VocabularyFileName, editor => editor.Set("qwen2.context_length", 1024u));

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal(model.VocabularyPath, error.FilePath);
        Assert.Contains("different models", error.Message);
    }

    [Theory]
    [InlineData(MiniOmniGgufKeys.WhisperHeads, 0)]
    [InlineData(MiniOmniGgufKeys.WhisperHeads, 3)] // does not divide the width of 32
    [InlineData(MiniOmniGgufKeys.WhisperLayers, 0)]
    [InlineData(MiniOmniGgufKeys.WhisperMelBins, 128)]
    [InlineData(MiniOmniGgufKeys.WhisperSampleRate, 8000)]
    [InlineData(MiniOmniGgufKeys.AudioLayerCount, 0)]
    [InlineData(MiniOmniGgufKeys.AudioLayerCount, 8)]
    [InlineData(MiniOmniGgufKeys.SnacSampleRate, 0)]
    [InlineData(MiniOmniGgufKeys.SnacSampleRate, -24000)]
    [InlineData(MiniOmniGgufKeys.SnacCodebookSize, 0)]
    [InlineData(MiniOmniGgufKeys.SnacDecoderDim, 0)]
    [InlineData(MiniOmniGgufKeys.TokenEndOfAudio, 5000)] // outside the 72 audio ids
    [InlineData(MiniOmniGgufKeys.TokenEndOfText, -1)]
    [InlineData(MiniOmniGgufKeys.TokenAsr, 512)] // the first id past the text vocabulary
    [InlineData(MiniOmniGgufKeys.EmbeddingLength, 0)]
    [InlineData(MiniOmniGgufKeys.AdapterType, "transformer")]
    [InlineData(MiniOmniGgufKeys.SnacDepthwise, false)]
    public void AudioParametersThatWouldDivideByZeroOrAssertAreNamed(string key, object value)
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.AudioFileName, editor => editor.Set(key, value));

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal(model.AudioPath, error.FilePath);
        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void VocabulariesThatDoNotFitTheRowsAreNamed()
    {
        // 1000 text ids plus seven audio layers of 72 do not fit 1024 rows.
        var model = small.CopyWith(_directory.Path, ModelDirectory.AudioFileName, editor => editor.Set(MiniOmniGgufKeys.TextVocabularySize, 1000));

        Assert.Equal(MiniOmniGgufKeys.PaddedVocabularySize, Assert.Throws<ModelFileException>(() => model.Check()).Key);
    }

    [Theory]
    [InlineData(new[] { 4, 0, 1 })]
    [InlineData(new int[0])]
    [InlineData(new[] { 4, 2 })]
    public void CodebookStridesOtherThanSnacsAreNamed(int[] strides)
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.AudioFileName, editor => editor.Set(MiniOmniGgufKeys.SnacStrides, strides));

        Assert.Equal(MiniOmniGgufKeys.SnacStrides, Assert.Throws<ModelFileException>(() => model.Check()).Key);
    }

    [Fact]
    public void ACodebookWithFewerRowsThanTheCodebookSizeIsNamedBeforeGgmlsGetRowsCouldAssert()
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.AudioFileName, editor => editor.Set(MiniOmniGgufKeys.SnacCodebookSize, 5000));

        var error = Assert.Throws<ModelFileException>(() => model.Check());

        Assert.Equal("snac.quantizer.quantizers.0.codebook.weight", error.Key);
        Assert.Contains("5000", error.Message);
    }

    [Fact]
    public void AnAudioTensorOfTheWrongTypeIsNamed()
    {
        var model = small.CopyWith(_directory.Path, ModelDirectory.AudioFileName, editor => editor.Retype("snac.decoder.model.0.bias", GgmlType.F16));

        Assert.Equal("snac.decoder.model.0.bias", Assert.Throws<ModelFileException>(() => model.Check()).Key);
    }
}
