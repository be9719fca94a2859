using MiniOmni.SK.ModelFiles.Checkpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

public sealed class WhisperCheckpointTests
{
    [Theory]
    [InlineData("encoder.positional_embedding", "model.encoder.embed_positions.weight")]
    [InlineData("encoder.conv1.weight", "model.encoder.conv1.weight")]
    [InlineData("encoder.blocks.11.attn.key.weight", "model.encoder.layers.11.self_attn.k_proj.weight")]
    [InlineData("encoder.blocks.0.attn.out.bias", "model.encoder.layers.0.self_attn.out_proj.bias")]
    [InlineData("encoder.blocks.3.attn_ln.weight", "model.encoder.layers.3.self_attn_layer_norm.weight")]
    [InlineData("encoder.blocks.3.mlp.2.bias", "model.encoder.layers.3.fc2.bias")]
    [InlineData("encoder.blocks.3.mlp_ln.bias", "model.encoder.layers.3.final_layer_norm.bias")]
    [InlineData("encoder.ln_post.weight", "model.encoder.layer_norm.weight")]
    public void OpenAiNamesMapToHuggingFaceNames(string openAi, string huggingFace) =>
        Assert.Equal(huggingFace, WhisperCheckpoint.ToHuggingFaceName(openAi));

    [Fact]
    public void AHuggingFaceDirectoryReadsLikeTheOpenAiFile()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        using var openAi = TorchCheckpoint.Open(Fixture.Whisper);
        var encoder = openAi.Tensors.Where(t => t.Key.StartsWith("encoder.", StringComparison.Ordinal)).ToList();
        TestCheckpoints.WriteSafetensors(Path.Combine(directory.Path, "model.safetensors"),
            encoder.Select(t => (WhisperCheckpoint.ToHuggingFaceName(t.Key), "F32", t.Value.Shape.ToArray(), TestCheckpoints.Floats(t.Value.ReadFloat32()))));
        File.WriteAllText(Path.Combine(directory.Path, "config.json"),
            """{"num_mel_bins": 80, "max_source_positions": 1500, "d_model": 32, "encoder_attention_heads": 2, "encoder_layers": 2}""");

        using var fromHub = WhisperCheckpoint.Open(directory.Path);
        using var fromOpenAi = WhisperCheckpoint.Open(Fixture.Whisper);

        Assert.Equal(fromOpenAi.Dims, fromHub.Dims);
        foreach (var (name, tensor) in encoder)
        {
            Assert.Equal(tensor.ReadFloat32(), fromHub.Get(name, [.. tensor.Shape]).ReadFloat32());
        }
    }

    [Fact]
    public void ADirectoryWithoutWeightsSaysWhatItExpected()
    {
        var error = Assert.Throws<ModelFileException>(() => WhisperCheckpoint.Open(Fixture.Checkpoint));
        Assert.Contains("model.safetensors", error.Message);
    }
}
