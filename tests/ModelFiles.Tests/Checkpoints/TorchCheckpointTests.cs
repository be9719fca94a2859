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
}
