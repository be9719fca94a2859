using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>Whisper's encoder dimensions, from openai's <c>dims</c> or a Hugging Face <c>config.json</c>.</summary>
public sealed record WhisperDims(int NMels, int NAudioCtx, int NAudioState, int NAudioHead, int NAudioLayer)
{
    /// <summary>From the <c>dims</c> dictionary of an openai <c>.pt</c> (flattened as <c>dims.n_mels</c> etc.).</summary>
    public static WhisperDims FromOpenAi(string path, IReadOnlyDictionary<string, object?> metadata)
    {
        int Value(string key) => metadata.TryGetValue("dims." + key, out object? value) && value is not null
            ? Convert.ToInt32(value)
            : throw new ModelFileException(path, "missing from the checkpoint's dims; is this an openai Whisper .pt?", "dims." + key);
        return new WhisperDims(Value("n_mels"), Value("n_audio_ctx"), Value("n_audio_state"), Value("n_audio_head"), Value("n_audio_layer"));
    }

    /// <summary>From a Hugging Face <c>config.json</c> of a Whisper model.</summary>
    public static WhisperDims FromHuggingFace(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            int Value(string key) => document.RootElement.TryGetProperty(key, out var value)
                ? value.GetInt32()
                : throw new ModelFileException(path, "missing; is this a Whisper config.json?", key);
            return new WhisperDims(Value("num_mel_bins"), Value("max_source_positions"), Value("d_model"), Value("encoder_attention_heads"), Value("encoder_layers"));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ModelFileException(path, $"not a valid Whisper config: {e.Message}", innerException: e);
        }
    }
}
