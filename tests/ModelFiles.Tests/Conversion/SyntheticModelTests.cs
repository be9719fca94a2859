using LLama;
using LLama.Common;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Conversion;

public sealed class SyntheticModelTests
{
    [Fact]
    public void TinySyntheticModelLoadsInLlamaSharpAndTokenizesLikeTheOriginal()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        var tokenizer = HfTokenizer.Load(Fixture.Tokenizer, ModelPresets.Tiny.Backbone.RowCount);
        var model = ModelSetWriter.WriteSynthetic(directory.Path, ModelPresets.Tiny, ModelFileType.F32, seed: 7, tokenizer);

        using var weights = LLamaWeights.LoadFromFile(new ModelParams(model.BackbonePath) { GpuLayerCount = 0 });
        Assert.Equal(181120, weights.Vocab.Count);
        var ids = weights.Tokenize("What is your name?", add_bos: false, special: false, System.Text.Encoding.UTF8);
        Assert.Equal([3838, 374, 697, 829, 30], ids.Select(t => (int)t));
    }
}
