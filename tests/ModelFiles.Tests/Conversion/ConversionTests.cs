using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Conversion;

public sealed class ConversionTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>
{
    [Fact]
    public void EveryWhisperAndAdapterTensorEqualsItsSource()
    {
        using var audio = GgufFile.Open(converted.Model.AudioPath);
        using var whisper = TorchCheckpoint.Open(Fixture.Whisper);
        using var litgpt = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        int compared = 0;
        foreach (var (name, tensor) in whisper.Tensors.Where(t => t.Key.StartsWith("encoder.", StringComparison.Ordinal)))
        {
            Assert.Equal(tensor.ReadFloat32(), audio.ReadFloat32(MiniOmniGgufKeys.WhisperTensorPrefix + name));
            Assert.Equal(tensor.Shape.Reverse(), audio.GetTensor(MiniOmniGgufKeys.WhisperTensorPrefix + name).Dims);
            compared++;
        }

        foreach (var (name, tensor) in litgpt.Tensors.Where(t => t.Key.StartsWith("whisper_adapter.", StringComparison.Ordinal)))
        {
            Assert.Equal(tensor.ReadFloat32(), audio.ReadFloat32(name));
            compared++;
        }

        Assert.Equal(5 + 2 * 15 + 2 + 3, compared);
    }

    [Fact]
    public void EverySnacTensorEqualsItsSourceWithWeightNormFolded()
    {
        using var audio = GgufFile.Open(converted.Model.AudioPath);
        using var snac = TorchCheckpoint.Open(Path.Combine(Fixture.Snac, "pytorch_model.bin"));
        var snacTensors = audio.Tensors.Keys.Where(k => k.StartsWith(MiniOmniGgufKeys.SnacTensorPrefix, StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(snacTensors);
        foreach (string ggufName in snacTensors)
        {
            string name = ggufName[MiniOmniGgufKeys.SnacTensorPrefix.Length..];
            float[] expected = snac.Tensors.TryGetValue(name, out var plain)
                ? plain.ReadFloat32()
                : FoldWeightNorm(snac.Tensors[name + "_g"].ReadFloat32(), snac.Tensors[name + "_v"]);
            float[] actual = audio.ReadFloat32(ggufName);
            Assert.Equal(expected.Length, actual.Length);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6f * Math.Max(1f, Math.Abs(expected[i])), $"{ggufName}[{i}]: {actual[i]} vs {expected[i]}");
            }
        }
    }

    [Fact]
    public void BackboneMatricesAreTheLitgptWeightsWithQkvSplitPerGroup()
    {
        using var backbone = GgufFile.Open(converted.Model.BackbonePath);
        using var litgpt = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        const int e = 32, hs = 8, heads = 4, groups = 2, perGroup = heads / groups + 2;
        float[] fused = litgpt.Tensors["transformer.h.1.attn.attn.weight"].ReadFloat32();
        float[] q = backbone.ReadFloat32("blk.1.attn_q.weight");
        float[] k = backbone.ReadFloat32("blk.1.attn_k.weight");
        float[] v = backbone.ReadFloat32("blk.1.attn_v.weight");
        for (int g = 0; g < groups; g++)
        {
            for (int row = 0; row < hs; row++)
            {
                for (int col = 0; col < e; col++)
                {
                    float Fused(int slice) => fused[((g * perGroup + slice) * hs + row) * e + col];
                    Assert.Equal(Fused(0), q[((g * 2 + 0) * hs + row) * e + col]);
                    Assert.Equal(Fused(1), q[((g * 2 + 1) * hs + row) * e + col]);
                    Assert.Equal(Fused(2), k[(g * hs + row) * e + col]);
                    Assert.Equal(Fused(3), v[(g * hs + row) * e + col]);
                }
            }
        }

        using var vocabulary = GgufFile.Open(converted.Model.VocabularyPath);
        Assert.Equal(litgpt.Tensors["lm_head.weight"].ReadFloat32(), vocabulary.ReadFloat32("output.weight"));
        Assert.Equal(litgpt.Tensors["transformer.wte.weight"].ReadFloat32(), vocabulary.ReadFloat32("token_embd.weight"));
        Assert.False(backbone.Tensors.ContainsKey("output.weight"));
        Assert.Equal(litgpt.Tensors["transformer.h.0.mlp.fc_1.weight"].ReadFloat32(), backbone.ReadFloat32("blk.0.ffn_gate.weight"));
    }

    [Fact]
    public void AudioMetadataStatesTheHyperParametersAndSpecialIds()
    {
        using var audio = GgufFile.Open(converted.Model.AudioPath);
        Assert.Equal(151936, audio.GetInteger(MiniOmniGgufKeys.TokenEndOfText));
        Assert.Equal(151940, audio.GetInteger(MiniOmniGgufKeys.TokenAsr));
        Assert.Equal(4096, audio.GetInteger(MiniOmniGgufKeys.TokenEndOfAudio));
        Assert.Equal(4099, audio.GetInteger(MiniOmniGgufKeys.TokenAnswerAudio));
        Assert.Equal(32, audio.GetInteger(MiniOmniGgufKeys.WhisperWidth));
        Assert.Equal("llamamlp", audio.GetString(MiniOmniGgufKeys.AdapterType));
        Assert.Equal([8, 8, 4, 2], audio.GetArray<int>(MiniOmniGgufKeys.SnacDecoderRates));
        Assert.Equal(64, audio.GetInteger(MiniOmniGgufKeys.SnacLatentDim));
    }

    /// <summary>w = g * v / ||v||, the norm over every dimension but the first: computed here independently of the converter.</summary>
    private static float[] FoldWeightNorm(float[] g, CheckpointTensor v)
    {
        float[] values = v.ReadFloat32();
        int rows = (int)v.Shape[0];
        int rowLength = values.Length / rows;
        var folded = new float[values.Length];
        for (int r = 0; r < rows; r++)
        {
            double sumOfSquares = 0;
            for (int i = 0; i < rowLength; i++)
            {
                sumOfSquares += (double)values[r * rowLength + i] * values[r * rowLength + i];
            }

            double scale = g[r] / Math.Sqrt(sumOfSquares);
            for (int i = 0; i < rowLength; i++)
            {
                folded[r * rowLength + i] = (float)(values[r * rowLength + i] * scale);
            }
        }

        return folded;
    }
}
