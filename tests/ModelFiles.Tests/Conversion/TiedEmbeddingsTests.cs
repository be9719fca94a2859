using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Conversion;

/// <summary>Issue 15: checkpoints whose head is tied to the token embeddings, as the Qwen2-0.5B family ships, convert.</summary>
public sealed class TiedEmbeddingsTests : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(HeadForm.SharedStorage)]
    [InlineData(HeadForm.Absent)]
    public void ATiedCopyOfTheFixtureConvertsWithTheEmbeddingTableAsItsHead(HeadForm form)
    {
        var model = Convert(form);

        using var vocabulary = GgufFile.Open(model.VocabularyPath);
        byte[] head = vocabulary.GetTensorBytes(vocabulary.GetTensor("output.weight")).ToArray();
        byte[] embeddings = vocabulary.GetTensorBytes(vocabulary.GetTensor("token_embd.weight")).ToArray();
        Assert.Equal(embeddings, head);
        using var checkpoint = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        Assert.Equal(checkpoint.Get("transformer.wte.weight").ReadFloat32(), vocabulary.ReadFloat32("output.weight"));
        Assert.NotEqual(checkpoint.Get("lm_head.weight").ReadFloat32(), vocabulary.ReadFloat32("output.weight"));
    }

    [Fact]
    public void AnUntiedCheckpointWhoseHeadEqualsItsEmbeddingsConvertsToTheSameFiles()
    {
        var tied = Convert(HeadForm.SharedStorage);
        var copied = Convert(HeadForm.EqualCopy);

        foreach (string file in new[] { ModelDirectory.VocabularyFileName, ModelDirectory.BackboneFileName, ModelDirectory.AudioFileName })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(tied.Path, file)), File.ReadAllBytes(Path.Combine(copied.Path, file)));
        }
    }

    [Fact]
    public void ATiedHeadIsReadOnceForBothTensors()
    {
        var shape = ModelPresets.Tiny.Backbone;
        int lookups = 0, reads = 0;
        BackboneGgufBuilder.TensorSource source = (name, dims) =>
        {
            lookups++;
            Assert.Equal(BackboneGgufBuilder.EmbeddingSourceName, name);
            return () =>
            {
                reads++;
                return new float[dims[0] * dims[1]];
            };
        };
        var writer = new GgufWriter();

        BackboneGgufBuilder.DescribeVocabulary(writer, shape, HfTokenizer.ByteLevel(shape.RowCount), source, GgmlType.F32, "test", tiedHead: true);
        writer.WriteTo(Path.Combine(_directory.Path, "vocabulary.gguf"));

        Assert.Equal((1, 1), (lookups, reads));
    }

    [Fact]
    public void TheConfigOfThePublishedFormConverts()
    {
        // MINI_OMNI_SPEC section 8: alphabetical litgpt keys, tie_word_embeddings true, vocab_size 50254 beside
        // padded_vocab_size 181120, rotary_percentage as the integer 1, prompt_vocab_size null, Mini-Omni's keys appended.
        const string Published = """
            add_qkv_bias: true
            asr_adapter: llamamlp
            attn_dropout: 0.0
            bias: false
            block_size: 2048
            force_align: false
            gelu_approximate: none
            head_size: 8
            hf_config:
              name: Qwen2-0.5B
              org: Qwen
            intermediate_size: 64
            lm_head_bias: false
            mlp_class_name: LLaMAMLP
            n_embd: 32
            n_expert: 0
            n_expert_per_token: 0
            n_head: 4
            n_layer: 2
            n_query_groups: 2
            name: Qwen2-0.5B
            norm_class_name: RMSNorm
            norm_eps: 1.0e-06
            padded_vocab_size: 181120
            padding_multiple: 512
            parallel_residual: false
            pos_type: rope
            post_adapter: false
            post_adapter_layers: 6
            prompt_vocab_size: null
            rope_base: 1000000
            rope_condense_ratio: 1
            rotary_percentage: 1
            scale_embeddings: false
            shared_attention_norm: false
            tie_word_embeddings: true
            use_pretrain_phoneme_emb: false
            vocab_size: 50254
            text_vocab_size: 152000
            cat_audio_vocab_size: 29120
            audio_vocab_size: 4160
            whisper_adapter_dim: 32
            """;

        var model = Convert(HeadForm.SharedStorage, _ => Published);

        using var audio = GgufFile.Open(model.AudioPath);
        Assert.Equal("Qwen2-0.5B", audio.GetString(MiniOmniGgufKeys.Name));
        using var vocabulary = GgufFile.Open(model.VocabularyPath);
        Assert.Equal([32L, 181120L], vocabulary.GetTensor("output.weight").Dims);
    }

    [Fact]
    public void TokenizerConfigIsOptional()
    {
        string checkpoint = TiedCheckpoints.Write(Path.Combine(_directory.Path, "no-tokenizer-config"), HeadForm.EqualCopy);
        File.Delete(Path.Combine(checkpoint, "tokenizer_config.json"));

        var model = ModelConverter.Convert(ConvertedFixtureModel.Sources with { CheckpointDirectory = checkpoint }, Path.Combine(_directory.Path, "out"), ModelFileType.F32);

        Assert.True(model.IsComplete);
    }

    private ModelDirectory Convert(HeadForm form, Func<string, string>? config = null)
    {
        string name = $"{form}-{Guid.NewGuid():N}";
        string checkpoint = TiedCheckpoints.Write(Path.Combine(_directory.Path, name), form, config);
        return ModelConverter.Convert(ConvertedFixtureModel.Sources with { CheckpointDirectory = checkpoint }, Path.Combine(_directory.Path, name + "-out"), ModelFileType.F32);
    }
}
