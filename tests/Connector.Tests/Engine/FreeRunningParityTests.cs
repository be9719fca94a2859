using System.Text.Json;
using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>Free-running greedy generation on the fixture: the reference's tokens, up to the first near-tie.</summary>
public sealed class FreeRunningParityTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    private static readonly MiniOmniVocabulary Vocabulary = GoldenTasks.ReleaseVocabulary;

    [Theory]
    [InlineData("A1A2", MiniOmniTask.A1A2)]
    [InlineData("A1T2", MiniOmniTask.A1T2)]
    [InlineData("ASR", MiniOmniTask.Asr)]
    [InlineData("T1A2_0", MiniOmniTask.T1A2)]
    [InlineData("T1T2_1", MiniOmniTask.T1T2)]
    [InlineData("A1A2_BATCH", MiniOmniTask.A1A2)]
    public void GreedyAnswersAreTheReferenceTokensUpToTheFirstNearTie(string name, MiniOmniTask task)
    {
        var reference = GoldenTasks.Task(name);
        bool parallel = name.EndsWith("BATCH", StringComparison.Ordinal);
        bool speaks = task is MiniOmniTask.A1A2 or MiniOmniTask.T1A2;
        var builder = new PromptBuilder(Vocabulary);
        var (prompt, thinking) = parallel ? builder.ForBatchParallel(Fixture.Leng)
            : task is MiniOmniTask.T1A2 or MiniOmniTask.T1T2 ? (builder.ForText(task, GoldenTasks.ReadIds(reference.GetProperty("input_ids")[7])[1..^2]), null)
            : (builder.ForAudio(task, Fixture.Leng), (Prompt?)null);
        float[] features = prompt.AudioFeatureCount > 0 ? Fixture.ReadFloats("adapter_out.f32") : [];
        int maxSteps = reference.GetProperty("max_returned_tokens").GetInt32() - reference.GetProperty("prompt_len").GetInt32();

        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        using var backbone = GoldenTasks.LoadBackbone(converted.Model, file);
        using var scheduler = new DecodeScheduler(backbone, new EmbeddingMix(file), Vocabulary, maxActiveAnswers: 1, NullLogger.Instance);
        var steps = scheduler.Submit(new GenerationRequest(task, prompt, thinking, features, new SamplingOptions(), maxSteps), CancellationToken.None).ReadAllAsync().ToBlockingEnumerable().ToList();

        int comparable = GoldenTasks.FirstNearTie(reference.GetProperty("steps"), speaks, parallel);
        var expectedText = speaks ? GoldenTasks.ReadIds(reference.GetProperty("output")[7]) : GoldenTasks.ReadIds(reference.GetProperty("output"));
        output.WriteLine($"{name}: {steps.Count} steps, first near-tie at step {comparable}");
        Assert.Equal(expectedText[..comparable], steps.Take(comparable).Select(s => s.Text));
        if (speaks)
        {
            var layers = GoldenTasks.AudioLayers(name);
            for (int layer = 0; layer < 7; layer++)
            {
                Assert.Equal(layers[layer].Take(comparable), steps.Take(comparable).Select(s => s.Audio[layer]));
            }
        }

        if (comparable == expectedText.Length)
        {
            Assert.Equal(expectedText.Length, steps.Count);
        }

        Assert.True(comparable >= 10, $"a near-tie at step {comparable} leaves too little to compare");
    }
}
