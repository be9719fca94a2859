using MiniOmni.SK.ModelFiles.Checkpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

public sealed class TorchCheckpointTests
{
    [Fact]
    public void ReadsTheFixtureFiles()
    {
        using var lit = TorchCheckpoint.Open(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        Assert.Equal(SourceDType.BF16, lit.Get("lm_head.weight").DType);
        Assert.Equal([181120L, 32L], lit.Get("lm_head.weight").Shape);
        using var whisper = TorchCheckpoint.Open(Fixture.Whisper);
        Assert.Equal(80L, System.Convert.ToInt64(whisper.Metadata["dims.n_mels"]));
        Assert.Equal(SourceDType.F16, whisper.Get("encoder.conv1.weight").DType);
        using var snac = TorchCheckpoint.Open(Path.Combine(Fixture.Snac, "pytorch_model.bin"));
        Assert.Equal(SourceDType.F32, snac.Get("decoder.model.0.weight_v").DType);
        Assert.Equal(64 * 32, lit.Get("whisper_adapter.fc_1.weight").ReadFloat32().Length);
    }

    [Fact]
    public void CheckpointsOpenedAtOnceEachReadTheirOwnFile()
    {
        // Razorvine's constructor table is process-wide: a tensor must still read from the file it was found in.
        string[] files = [Path.Combine(Fixture.Checkpoint, "lit_model.pth"), Fixture.Whisper, Path.Combine(Fixture.Snac, "pytorch_model.bin")];
        var expected = files.Select(f =>
        {
            using var checkpoint = TorchCheckpoint.Open(f);
            return checkpoint.Tensors.Values.First().ReadFloat32().Take(8).ToArray();
        }).ToArray();

        var results = Enumerable.Range(0, 24).AsParallel().WithDegreeOfParallelism(6).Select(i =>
        {
            using var checkpoint = TorchCheckpoint.Open(files[i % 3]);
            return (i % 3, checkpoint.Tensors.Values.First().ReadFloat32().Take(8).ToArray());
        }).ToList();

        Assert.All(results, r => Assert.Equal(expected[r.Item1], r.Item2));
    }
}
