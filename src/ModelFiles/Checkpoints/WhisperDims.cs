using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>Whisper's encoder dimensions, from openai's <c>dims</c> or a Hugging Face <c>config.json</c>, checked as they are read.</summary>
public sealed record WhisperDims(int NMels, int NAudioCtx, int NAudioState, int NAudioHead, int NAudioLayer)
{
    /// <summary>The largest Whisper <c>config.json</c> read (the hub's is about 2 KB).</summary>
    public const int MaxConfigBytes = 1 << 20;

    /// <summary>From the <c>dims</c> dictionary of an openai <c>.pt</c> (flattened as <c>dims.n_mels</c> etc.).</summary>
    public static WhisperDims FromOpenAi(string path, IReadOnlyDictionary<string, object?> metadata)
    {
        long Value(string key)
        {
            string name = "dims." + key;
            return metadata.TryGetValue(name, out object? value) switch
            {
                false => throw new ModelFileException(path, "missing from the checkpoint's dims; is this an openai Whisper .pt?", name),
                true => value switch
                {
                    int i => i,
                    long l => l,
                    _ => throw new ModelFileException(path, $"expected an integer, found {value?.GetType().Name ?? "None"} '{value}'.", name),
                },
            };
        }

        return Checked(path, "dims.", Value("n_mels"), Value("n_audio_ctx"), Value("n_audio_state"), Value("n_audio_head"), Value("n_audio_layer"),
            ["n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer"]);
    }

    /// <summary>From a Hugging Face <c>config.json</c> of a Whisper model.</summary>
    public static WhisperDims FromHuggingFace(string path)
    {
        using var document = ReadJson(path, MaxConfigBytes, "Whisper config.json");
        var root = document.RootElement;
        long Value(string key) => root.TryGetProperty(key, out var value)
            ? value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number)
                ? number
                : throw new ModelFileException(path, $"expected an integer, found {value.ValueKind} {value.GetRawText()}.", key)
            : throw new ModelFileException(path, "missing; is this a Whisper config.json?", key);
        return Checked(path, "", Value("num_mel_bins"), Value("max_source_positions"), Value("d_model"), Value("encoder_attention_heads"), Value("encoder_layers"),
            ["num_mel_bins", "max_source_positions", "d_model", "encoder_attention_heads", "encoder_layers"]);
    }

    /// <summary>Reads a small JSON file whose root is an object; too large, not JSON or not an object is an error naming the file (and the byte, for the last two).</summary>
    internal static JsonDocument ReadJson(string path, int maxBytes, string what)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        long length = new FileInfo(path).Length;
        if (length > maxBytes)
        {
            throw new ModelFileException(path, $"{length} bytes is far more than a {what} holds (at most {maxBytes} are read).");
        }

        byte[] bytes = File.ReadAllBytes(path);
        var document = TextPositions.ParseJson(path, bytes, "the file");
        var kind = document.RootElement.ValueKind;
        if (kind != JsonValueKind.Object)
        {
            document.Dispose();
            throw TextPositions.NotAnObject(path, bytes, kind, $"a {what}");
        }

        return document;
    }

    // What the encoder graph can run: MiniOmni.SK computes Whisper's own 80-bin, 30 s log-mel, so those two are fixed.
    private static WhisperDims Checked(string path, string prefix, long mels, long context, long width, long heads, long layers, string[] keys)
    {
        if (mels != ModelLimits.WhisperMelBins)
        {
            throw new ModelFileException(path, $"{mels} mel bins; Whisper's front end, which MiniOmni.SK computes, has {ModelLimits.WhisperMelBins}.", prefix + keys[0]);
        }

        if (context != ModelLimits.WhisperContext)
        {
            throw new ModelFileException(path, $"{context} positions; Whisper's 30 s window has {ModelLimits.WhisperContext}.", prefix + keys[1]);
        }

        int w = ModelLimits.InRange(width, 1, ModelLimits.MaxWidth, path, prefix + keys[2]);
        int h = ModelLimits.InRange(heads, 1, ModelLimits.MaxHeads, path, prefix + keys[3]);
        if (w % h != 0)
        {
            throw new ModelFileException(path, $"{h} heads do not divide the width {w}.", prefix + keys[3]);
        }

        return new WhisperDims((int)mels, (int)context, w, h, ModelLimits.InRange(layers, 1, ModelLimits.MaxWhisperLayers, path, prefix + keys[4]));
    }
}
