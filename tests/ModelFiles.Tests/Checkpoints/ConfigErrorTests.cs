using System.Text.Json;
using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Conversion;
using static MiniOmni.SK.ModelFiles.Tests.Checkpoints.TestCheckpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

/// <summary>
/// Issue 18's config class and issue 15's litgpt fields: values out of range or in conflict, and litgpt options that
/// change the computation, are refused at conversion with an error naming the file, the field and the value.
/// </summary>
public sealed class ConfigErrorTests : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData("n_layer", "0")]
    [InlineData("n_layer", "100000")]
    [InlineData("n_head", "0")]
    [InlineData("n_embd", "-32")]
    [InlineData("padded_vocab_size", "-181120")]
    [InlineData("padded_vocab_size", "99999999999")]
    [InlineData("padded_vocab_size", "152000")] // cannot hold the seven audio layers after the text
    [InlineData("text_vocab_size", "-5")]
    [InlineData("audio_vocab_size", "64")] // nothing left beside the 64 specials
    [InlineData("rope_base", "-1000000")]
    [InlineData("rope_base", ".nan")]
    [InlineData("norm_eps", "0")]
    [InlineData("block_size", "0")]
    [InlineData("n_query_groups", "3")] // does not divide 4 heads
    [InlineData("head_size", "7")] // 4 x 7 is not the width 32
    [InlineData("intermediate_size", "0")]
    [InlineData("n_layer", "two")]
    [InlineData("n_layer", "[1, 2]")]
    public void OutOfRangeOrConflictingLitGptValuesAreNamed(string key, string value)
    {
        var error = Assert.Throws<ModelFileException>(() => LitGptConfig.Load(Config((key, value))));

        Assert.Equal(key, error.Key);
        Assert.Contains("model_config.yaml", error.FilePath);
    }

    [Theory]
    [InlineData("parallel_residual", "true")]
    [InlineData("shared_attention_norm", "true")]
    [InlineData("scale_embeddings", "true")]
    [InlineData("lm_head_bias", "true")]
    [InlineData("bias", "true")]
    [InlineData("add_qkv_bias", "false")]
    [InlineData("post_adapter", "true")]
    [InlineData("norm_class_name", "LayerNorm")]
    [InlineData("mlp_class_name", "GptNeoxMLP")]
    [InlineData("mlp_class_name", "LLaMAMoE")]
    [InlineData("rope_condense_ratio", "2")]
    [InlineData("rotary_percentage", "0.25")]
    [InlineData("name", "Gemma-2b")]
    [InlineData("asr_adapter", "conv")]
    public void LitGptOptionsThatChangeTheComputationAreRefusedWithTheirValue(string key, string value)
    {
        var error = Assert.Throws<ModelFileException>(() => LitGptConfig.Load(Config((key, value))));

        Assert.Equal(key, error.Key);
        Assert.Contains(value, error.Message);
    }

    [Theory]
    [InlineData("parallel_residual", "true")]
    [InlineData("norm_class_name", "LayerNorm")]
    [InlineData("mlp_class_name", "GptNeoxMLP")]
    [InlineData("rotary_percentage", "0.25")]
    [InlineData("bias", "true")]
    public void AnAbsentOptionTakesLitGptsDefaultAndSaysSo(string key, string litGptDefault)
    {
        var error = Assert.Throws<ModelFileException>(() => LitGptConfig.Load(Config((key, null))));

        Assert.Equal(key, error.Key);
        Assert.Contains(litGptDefault, error.Message);
        Assert.Contains("litgpt's default", error.Message);
    }

    [Fact]
    public void UnknownFieldsAndFieldsThatChangeNothingAreIgnored()
    {
        var config = LitGptConfig.Load(Config(("some_future_field", "42"), ("gelu_approximate", "tanh"), ("attn_dropout", "0.1"), ("n_expert", "8"), ("rotary_percentage", "1"), ("head_size", "null")));

        Assert.Equal(8, config.HeadSize); // absent head_size is n_embd / n_head, as litgpt derives it
        Assert.Equal(2, config.NLayer);
    }

    [Fact]
    public void AnAbsentPaddedVocabularyIsDerivedAsLitGptDoes()
    {
        // vocab_size 181000 padded to multiples of 512: 181248 rows.
        var config = LitGptConfig.Load(Config(("padded_vocab_size", null), ("vocab_size", "181000")));

        Assert.Equal(181248, config.PaddedVocabSize);
    }

    [Fact]
    public void DeeplyNestedYamlIsRefusedBeforeItIsBuilt()
    {
        string path = Path.Combine(_directory.Path, "model_config.yaml");
        File.WriteAllText(path, "n_layer: " + new string('[', 50_000) + new string(']', 50_000) + "\n");

        var error = Assert.Throws<ModelFileException>(() => LitGptConfig.Load(path));

        Assert.Contains("nested", error.Message);
    }

    [Theory]
    [InlineData("encoder_attention_heads", 0)]
    [InlineData("encoder_attention_heads", 5)] // does not divide the width
    [InlineData("encoder_layers", 0)]
    [InlineData("d_model", -768)]
    [InlineData("num_mel_bins", 128)]
    [InlineData("max_source_positions", 3000)]
    public void WhisperHuggingFaceConfigValuesAreNamed(string key, int value)
    {
        var values = new Dictionary<string, object> { ["num_mel_bins"] = 80, ["max_source_positions"] = 1500, ["d_model"] = 768, ["encoder_attention_heads"] = 12, ["encoder_layers"] = 12 };
        values[key] = value;
        string path = Path.Combine(_directory.Path, "config.json");
        File.WriteAllText(path, JsonSerializer.Serialize(values));

        var error = Assert.Throws<ModelFileException>(() => WhisperDims.FromHuggingFace(path));

        Assert.Equal(key, error.Key);
        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void AWhisperConfigWithAStringWhereANumberGoesIsNamed()
    {
        string path = Path.Combine(_directory.Path, "config.json");
        File.WriteAllText(path, """{"num_mel_bins": "80", "max_source_positions": 1500, "d_model": 768, "encoder_attention_heads": 12, "encoder_layers": 12}""");

        Assert.Equal("num_mel_bins", Assert.Throws<ModelFileException>(() => WhisperDims.FromHuggingFace(path)).Key);
    }

    [Theory]
    [InlineData("n_audio_head", 0)]
    [InlineData("n_audio_layer", 0)]
    public void OpenAiWhisperDimsOfZeroAreNamed(string key, int value)
    {
        var dims = new Dictionary<string, int> { ["n_mels"] = 80, ["n_audio_ctx"] = 1500, ["n_audio_state"] = 32, ["n_audio_head"] = 2, ["n_audio_layer"] = 2 };
        dims[key] = value;
        var pickle = new PickleBuilder().Op((byte)'}').String("model_state_dict").Op((byte)'}').Op((byte)'s').String("dims").Op((byte)'}');
        foreach (var (name, number) in dims)
        {
            pickle.String(name).Int(number).Op((byte)'s');
        }

        string path = WriteTorchZip(_directory.Path, "whisper.pt", pickle.Op((byte)'s').Op((byte)'.').ToArray());

        var error = Assert.Throws<ModelFileException>(() => WhisperCheckpoint.Open(path));

        Assert.Equal("dims." + key, error.Key);
    }

    [Theory]
    [InlineData("vq_strides", "[]")]
    [InlineData("vq_strides", "[4, 0, 1]")]
    [InlineData("vq_strides", "[8, 4, 2, 1]")]
    [InlineData("codebook_size", "0")]
    [InlineData("codebook_dim", "-8")]
    [InlineData("sampling_rate", "0")]
    [InlineData("sampling_rate", "-24000")]
    [InlineData("decoder_dim", "0")]
    [InlineData("decoder_dim", "100")] // cannot be halved four times
    [InlineData("decoder_rates", "[8, 0, 4, 2]")]
    [InlineData("decoder_rates", "\"8842\"")]
    [InlineData("noise", "1")]
    public void SnacConfigValuesAreNamed(string key, string json)
    {
        string path = SnacConfigWith(key, json);

        var error = Assert.Throws<ModelFileException>(() => SnacConfig.Load(path));

        Assert.Equal(key, error.Key);
        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void ConversionRefusesABadSnacConfigBeforeWritingAnything()
    {
        string snac = Path.Combine(_directory.Path, "snac");
        Directory.CreateDirectory(snac);
        File.Copy(Path.Combine(Fixture.Snac, "pytorch_model.bin"), Path.Combine(snac, "pytorch_model.bin"));
        File.Copy(SnacConfigWith("vq_strides", "[]"), Path.Combine(snac, "config.json"));
        string output = Path.Combine(_directory.Path, "out");
        Directory.CreateDirectory(output);

        var error = Assert.Throws<ModelFileException>(() => ModelConverter.Convert(ConvertedFixtureModel.Sources with { SnacDirectory = snac }, output, ModelFileType.F32));

        Assert.Equal("vq_strides", error.Key);
        Assert.Empty(Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public void ConversionRefusesANonDepthwiseSnac()
    {
        string snac = Path.Combine(_directory.Path, "snac-dense");
        Directory.CreateDirectory(snac);
        File.Copy(Path.Combine(Fixture.Snac, "pytorch_model.bin"), Path.Combine(snac, "pytorch_model.bin"));
        File.Copy(SnacConfigWith("depthwise", "false"), Path.Combine(snac, "config.json"));

        var error = Assert.Throws<ModelFileException>(() => SnacCheckpoint.Open(snac));

        Assert.Equal("depthwise", error.Key);
    }

    private string SnacConfigWith(string key, string json)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture.Snac, "config.json")))!.AsObject();
        root[key] = System.Text.Json.Nodes.JsonNode.Parse(json);
        string path = Path.Combine(_directory.Path, $"snac-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    // The fixture's model_config.yaml with keys replaced, added, or (value null) removed.
    private string Config(params (string Key, string? Value)[] changes)
    {
        var lines = File.ReadAllLines(Path.Combine(Fixture.Checkpoint, "model_config.yaml")).ToList();
        foreach (var (key, value) in changes)
        {
            int index = lines.FindIndex(l => l.StartsWith(key + ":", StringComparison.Ordinal));
            if (index >= 0)
            {
                lines.RemoveAt(index);
            }

            if (value is not null)
            {
                lines.Add($"{key}: {value}");
            }
        }

        string directory = Path.Combine(_directory.Path, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, "model_config.yaml");
        File.WriteAllLines(path, lines);
        return path;
    }
}
