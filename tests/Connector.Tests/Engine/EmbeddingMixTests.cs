using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Connector.Tests.Engine;

public sealed class EmbeddingMixTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>
{
    [Fact]
    public void MixingTheA1A2PromptWithTheAdapterOutputGivesTheReferencePrefillEmbeddings()
    {
        var streams = GoldenTasks.Task("A1A2").GetProperty("input_ids").EnumerateArray().Select(GoldenTasks.ReadIds).ToList();
        float[] adapterOutput = Fixture.ReadFloats("adapter_out.f32");
        float[] expected = Fixture.ReadFloats("A1A2.prefill_embd.f32");
        using var vocabulary = GgufFile.Open(converted.Model.VocabularyPath);

        float[] mixed = new EmbeddingMix(vocabulary).MixPrompt(streams, adapterOutput, firstAudioPosition: 1);

        Assert.Equal(expected.Length, mixed.Length);
        float maxError = expected.Zip(mixed, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxError <= 1e-6f, $"max abs error {maxError:E2}");
    }

    [Fact]
    public void BadIdsAndShapesAreRefusedBeforeAnyRead()
    {
        using var vocabulary = GgufFile.Open(converted.Model.VocabularyPath);
        var mix = new EmbeddingMix(vocabulary);
        var destination = new float[mix.Width];

        Assert.Throws<ArgumentOutOfRangeException>(() => mix.Mix([0, 0, 0, 0, 0, 0, 0, 181120], default, destination));
        Assert.Throws<ArgumentException>(() => mix.Mix([0, 0, 0], default, destination));
        Assert.Throws<ArgumentException>(() => mix.Mix([0, 0, 0, 0, 0, 0, 0, 0], new float[3], destination));
        Assert.Throws<ArgumentException>(() => mix.MixPrompt([.. Enumerable.Repeat(new[] { 1, 2 }, 8)], new float[3 * mix.Width], firstAudioPosition: 1));
    }
}
