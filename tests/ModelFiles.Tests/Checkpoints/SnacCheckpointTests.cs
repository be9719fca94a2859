using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

public sealed class SnacCheckpointTests
{
    [Fact]
    public void ParametrizationKeysFoldLikeWeightGAndWeightV()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        using var original = TorchCheckpoint.Open(Path.Combine(Fixture.Snac, "pytorch_model.bin"));
        // The same weights as newer PyTorch saves them: weight_g -> parametrizations.weight.original0, weight_v -> original1.
        static string Rename(string name) => name.EndsWith(".weight_g", StringComparison.Ordinal)
            ? name[..^".weight_g".Length] + ".parametrizations.weight.original0"
            : name.EndsWith(".weight_v", StringComparison.Ordinal) ? name[..^".weight_v".Length] + ".parametrizations.weight.original1" : name;
        TestCheckpoints.WriteSafetensors(Path.Combine(directory.Path, "model.safetensors"),
            original.Tensors.Select(t => (Rename(t.Key), "F32", t.Value.Shape.ToArray(), TestCheckpoints.Floats(t.Value.ReadFloat32()))));
        File.Copy(Path.Combine(Fixture.Snac, "config.json"), Path.Combine(directory.Path, "config.json"));

        using var parametrized = SnacCheckpoint.Open(directory.Path);
        using var classic = SnacCheckpoint.Open(Fixture.Snac);

        var shape = new SnacShape(24000, 64, 64, [8, 8, 4, 2], 4096, 8, [4, 2, 1], Noise: true, Depthwise: true);
        int folded = 0;
        foreach (var slot in AudioTensorLayout.Snac(shape))
        {
            Assert.Equal(classic.Get(slot.SourceName, slot.Shape).ReadFloat32(), parametrized.Get(slot.SourceName, slot.Shape).ReadFloat32());
            folded += original.Tensors.ContainsKey(slot.SourceName + "_v") ? 1 : 0;
        }

        Assert.True(folded > 20, "most decoder convolutions are weight-normed");
    }

    [Fact]
    public void TheConfigDerivesTheLatentWidthFromTheEncoder()
    {
        var config = SnacConfig.Load(Path.Combine(Fixture.Snac, "config.json"));

        Assert.Equal(4 * 16, config.LatentDim);
        Assert.Equal([8, 8, 4, 2], config.DecoderRates);
        Assert.True(config.Noise);
        Assert.True(config.Depthwise);
    }
}
