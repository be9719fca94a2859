using System.Text;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using MiniOmni.SK.ModelFiles.Gguf;
using Xunit.Abstractions;

namespace MiniOmni.SK.ModelFiles.Tests.Conversion;

/// <summary>The converted backbone, run by llama.cpp through LLamaSharp, against what the original PyTorch code computed.</summary>
public sealed class BackboneParityTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    private const int EmbeddingLength = 32;

    [Theory]
    [InlineData(GGMLType.GGML_TYPE_F32, 1e-4)]
    [InlineData(GGMLType.GGML_TYPE_F16, 2e-3)]
    public void PrefillEmbeddingsGiveTheReferenceLogits(GGMLType cacheType, double tolerance)
    {
        float[] embeddings = Fixture.ReadFloats("A1A2.prefill_embd.f32");
        float[] expected = Fixture.ReadFloats("A1A2.prefill_logits.f32");
        int positions = embeddings.Length / EmbeddingLength;

        // llama.cpp gives the normed hidden state; the head is the vocabulary file's output.weight, applied here in plain C#.
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(converted.Model.BackbonePath) { GpuLayerCount = 0 });
        using var context = weights.CreateContext(new ModelParams(converted.Model.BackbonePath)
        {
            ContextSize = 256,
            BatchSize = 256,
            TypeK = cacheType,
            TypeV = cacheType,
            FlashAttention = false,
            Embeddings = true,
            PoolingType = LLamaPoolingType.None,
        });
        var batch = new LLamaBatchEmbeddings(EmbeddingLength);
        for (int position = 0; position < positions; position++)
        {
            batch.Add(embeddings.AsSpan(position * EmbeddingLength, EmbeddingLength), (LLamaPos)position, (LLamaSeqId)0, logits: position == positions - 1);
        }

        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
        float[] hidden = context.NativeHandle.GetEmbeddingsIth((LLamaPos)(positions - 1)).ToArray();
        using var vocabulary = GgufFile.Open(converted.Model.VocabularyPath);
        float[] head = vocabulary.ReadFloat32("output.weight");

        Assert.Equal(expected.Length * EmbeddingLength, head.Length);
        double maxError = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double logit = System.Numerics.Tensors.TensorPrimitives.Dot(head.AsSpan(i * EmbeddingLength, EmbeddingLength), hidden);
            maxError = Math.Max(maxError, Math.Abs(expected[i] - logit));
        }

        output.WriteLine($"max |logit - reference| with a {cacheType} cache: {maxError:E3}");
        Assert.True(maxError <= tolerance, $"max abs error {maxError:E3} exceeds {tolerance:E1}");
    }

    [Fact]
    public void LlamaCppTokenizesEveryFixturePromptToTheReferenceIds()
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Fixture.Expected("manifest.json")));
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(converted.Model.VocabularyPath) { VocabOnly = true, GpuLayerCount = 0 });
        int checkedPrompts = 0;
        foreach (var task in manifest.RootElement.GetProperty("tasks").EnumerateObject())
        {
            if (!task.Value.TryGetProperty("text", out var text))
            {
                continue;
            }

            // The text stream is INPUT_T, the prompt's ids, EOT, ANSWER_T.
            var textStream = task.Value.GetProperty("input_ids")[7].EnumerateArray().Select(id => id.GetInt32()).ToArray();
            int[] expected = textStream[1..^2];
            var ids = weights.Tokenize(text.GetString()!, add_bos: false, special: false, Encoding.UTF8).Select(t => (int)t).ToArray();
            Assert.Equal(expected, ids);
            checkedPrompts++;
        }

        Assert.True(checkedPrompts >= 2, "the manifest should hold text prompts");
    }
}
