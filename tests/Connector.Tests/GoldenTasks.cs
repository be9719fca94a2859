using System.Text.Json;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Connector.Tests;

/// <summary>The fixture manifest's tasks, and the audio stages built on the converted fixture model.</summary>
internal static class GoldenTasks
{
    private static readonly Lazy<JsonDocument> Manifest = new(() => JsonDocument.Parse(File.ReadAllText(Fixture.Expected("manifest.json"))));

    /// <summary>The manifest entry of <paramref name="task"/>.</summary>
    public static JsonElement Task(string task) => Manifest.Value.RootElement.GetProperty("tasks").GetProperty(task);

    /// <summary>The seven generated audio streams (unshifted) of a speech task.</summary>
    public static List<IReadOnlyList<int>> AudioLayers(string task) =>
        [.. Task(task).GetProperty("output").EnumerateArray().Take(DelayPattern.LayerCount).Select(ReadIds)];

    /// <summary>Where the reference's top two logits are closer than this, float rounding may legitimately pick either.</summary>
    public const float NearTie = 1e-4f;

    /// <summary>
    /// The first step at which any head the answer samples (the seven audio heads of a speaking row, and the text head
    /// of the row that writes the text) had its top two reference logits within <see cref="NearTie"/>; up to there a
    /// greedy answer must be the reference's tokens.
    /// </summary>
    public static int FirstNearTie(JsonElement steps, bool speaks, bool parallel)
    {
        for (int step = 0; step < steps.GetArrayLength(); step++)
        {
            var heads = Enumerable.Range(0, speaks ? 7 : 0).Select(h => steps[step][0][h]).Append(steps[step][parallel ? 1 : 0][7]);
            if (heads.Any(head => head[1][0].GetSingle() - head[1][1].GetSingle() < NearTie))
            {
                return step;
            }
        }

        return steps.GetArrayLength();
    }

    /// <summary>A JSON array of ids.</summary>
    public static int[] ReadIds(JsonElement ids) => [.. ids.EnumerateArray().Select(id => id.GetInt32())];

    /// <summary>A SNAC decoder over the converted fixture's audio file.</summary>
    public static SnacDecoder CreateSnacDecoder(ModelDirectory model, int maxFrames, bool fuseCpuKernels = true)
    {
        using var file = GgufFile.Open(model.AudioPath);
        return new SnacDecoder(file, AudioModelParameters.Read(file), new GgmlComputeOptions { Threads = 2, FuseCpuKernels = fuseCpuKernels }, maxFrames);
    }

    /// <summary>The release's id spaces: 152000 text rows, seven audio layers of 4160.</summary>
    public static readonly MiniOmniVocabulary ReleaseVocabulary = new(152000, 4160, 7, 181120, SpecialTokens.FromVocabularies(152000, 4160));

    /// <summary>The id spaces <paramref name="model"/>'s audio file states, as the engine reads them.</summary>
    public static MiniOmniVocabulary Vocabulary(ModelDirectory model)
    {
        using var audio = GgufFile.Open(model.AudioPath);
        return MiniOmniVocabulary.From(AudioModelParameters.Read(audio));
    }

    /// <summary>The fixture's backbone with its output heads, as the engine loads them (f32 cache, CPU).</summary>
    public static Backbone LoadBackbone(ModelDirectory model, GgufFile vocabularyFile, int maxSequences = 2)
    {
        var heads = new OutputHeads(vocabularyFile, Vocabulary(model), new GgmlComputeOptions { Threads = 2 }, maxSequences);
        try
        {
            return Backbone.Load(model.BackbonePath, heads, new BackboneOptions { ContextSize = 512, MaxSequences = (uint)maxSequences, CacheType = LLama.Native.GGMLType.GGML_TYPE_F32, GpuLayerCount = 0 });
        }
        catch
        {
            heads.Dispose();
            throw;
        }
    }

    /// <summary>A Whisper encoder over <paramref name="model"/>'s audio file.</summary>
    public static WhisperEncoder CreateEncoder(ModelDirectory model)
    {
        using var file = GgufFile.Open(model.AudioPath);
        return new WhisperEncoder(file, AudioModelParameters.Read(file), new GgmlComputeOptions { Threads = 2 });
    }
}
