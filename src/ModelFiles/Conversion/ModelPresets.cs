namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>The shapes of a complete Mini-Omni model set.</summary>
public sealed record ModelPreset(string Name, BackboneShape Backbone, WhisperShape Whisper, string AdapterType, int AdapterIntermediate, SnacShape Snac, int TextVocabularySize, int AudioVocabularySize, int AudioLayerCount)
{
    /// <summary>The audio file's description for this preset.</summary>
    public AudioFileDescription DescribeAudio(ModelFileType type) => new(
        Name, type, Backbone.RowCount, TextVocabularySize, AudioVocabularySize, AudioLayerCount, Backbone.EmbeddingLength,
        SpecialTokens.FromVocabularies(TextVocabularySize, AudioVocabularySize), Whisper, AdapterType, Snac);
}

/// <summary>Named shapes for <c>miniomni synth</c>: the released model's, and the golden fixture's tiny one.</summary>
public static class ModelPresets
{
    private static readonly SnacShape Snac24Khz = new(24000, 768, 1024, [8, 8, 4, 2], 4096, 8, [4, 2, 1], Noise: true, Depthwise: true);

    /// <summary>The released Mini-Omni: Qwen2-0.5B, Whisper-small, SNAC 24 kHz.</summary>
    public static ModelPreset MiniOmni { get; } = new(
        "mini-omni",
        new BackboneShape("mini-omni", 24, 14, 2, 64, 896, 4864, 1e-6f, 1_000_000f, 181120, 2048),
        new WhisperShape(80, 1500, 768, 12, 12),
        "llamamlp", 4864, Snac24Khz, 152000, 4160, 7);

    /// <summary>The shapes of the golden <c>tiny-a</c> fixture.</summary>
    public static ModelPreset Tiny { get; } = new(
        "tiny",
        new BackboneShape("tiny", 2, 4, 2, 8, 32, 64, 1e-6f, 1_000_000f, 181120, 2048),
        new WhisperShape(80, 1500, 32, 2, 2),
        "llamamlp", 64, Snac24Khz with { LatentDim = 64, DecoderDim = 64 }, 152000, 4160, 7);

    /// <summary>The presets by name.</summary>
    public static IReadOnlyDictionary<string, ModelPreset> All { get; } = new Dictionary<string, ModelPreset>(StringComparer.OrdinalIgnoreCase)
    {
        [MiniOmni.Name] = MiniOmni,
        [Tiny.Name] = Tiny,
    };

    /// <summary>Finds a preset; an unknown name is an error listing the choices.</summary>
    public static ModelPreset Get(string name) => All.TryGetValue(name, out var preset)
        ? preset
        : throw new ArgumentException($"Unknown preset '{name}'; choose one of {string.Join(", ", All.Keys)}.", nameof(name));
}
