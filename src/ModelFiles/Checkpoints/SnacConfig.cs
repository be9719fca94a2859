using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>SNAC's <c>config.json</c>, checked as it is read.</summary>
public sealed record SnacConfig(
    int SamplingRate,
    int EncoderDim,
    IReadOnlyList<int> EncoderRates,
    int LatentDim,
    int DecoderDim,
    IReadOnlyList<int> DecoderRates,
    int CodebookSize,
    int CodebookDim,
    IReadOnlyList<int> VqStrides,
    bool Noise,
    bool Depthwise,
    int? AttentionWindowSize)
{
    /// <summary>The largest SNAC <c>config.json</c> read (the hub's is a few hundred bytes).</summary>
    public const int MaxFileBytes = 1 << 20;

    /// <summary>Reads <paramref name="path"/>; a missing, mistyped or out-of-range key is an error naming it.</summary>
    public static SnacConfig Load(string path)
    {
        using var document = WhisperDims.ReadJson(path, MaxFileBytes, "SNAC config.json");
        var root = document.RootElement;
        JsonElement? Optional(string key) => root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;
        JsonElement Required(string key) => Optional(key) ?? throw new ModelFileException(path, "required key is missing; is this SNAC's config.json?", key);
        long Integer(JsonElement value, string key) => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number)
            ? number
            : throw new ModelFileException(path, $"expected an integer, found {value.ValueKind} {value.GetRawText()}.", key);
        int Int(string key, long min, long max) => ModelLimits.InRange(Integer(Required(key), key), min, max, path, key);
        int[] Ints(string key, int maxCount, long min, long max)
        {
            var array = Required(key);
            if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() is 0 || array.GetArrayLength() > maxCount)
            {
                throw new ModelFileException(path, $"expected a list of 1 to {maxCount} integers, found {array.ValueKind} {array.GetRawText()}.", key);
            }

            return [.. array.EnumerateArray().Select(v => ModelLimits.InRange(Integer(v, key), min, max, path, key))];
        }

        bool Bool(string key) => Optional(key) is not { } value ? false
            : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
            : throw new ModelFileException(path, $"expected true or false, found {value.ValueKind} {value.GetRawText()}.", key);

        int encoderDim = Int("encoder_dim", 1, ModelLimits.MaxWidth);
        int[] encoderRates = Ints("encoder_rates", ModelLimits.MaxSnacBlocks, 1, ModelLimits.MaxSnacRate);
        // SNAC derives the latent width from the encoder when the config leaves it out.
        long latent = Optional("latent_dim") is { } latentValue ? Integer(latentValue, "latent_dim") : (long)encoderDim << encoderRates.Length;
        int decoderDim = Int("decoder_dim", 1, ModelLimits.MaxWidth);
        int[] decoderRates = Ints("decoder_rates", ModelLimits.MaxSnacBlocks, 1, ModelLimits.MaxSnacRate);
        if (decoderDim % (1 << decoderRates.Length) != 0)
        {
            throw new ModelFileException(path, $"{decoderDim} channels cannot be halved by each of {decoderRates.Length} upsampling blocks.", "decoder_dim");
        }

        int[] strides = Ints("vq_strides", ModelLimits.SnacStrides.Count + 1, 1, ModelLimits.MaxSnacRate);
        if (!strides.SequenceEqual(ModelLimits.SnacStrides))
        {
            throw new ModelFileException(path, $"[{string.Join(", ", strides)}] is not SNAC 24 kHz's [{string.Join(", ", ModelLimits.SnacStrides)}], which Mini-Omni's seven audio layers are made of.", "vq_strides");
        }

        int? window = Optional("attn_window_size") is { } windowValue ? ModelLimits.InRange(Integer(windowValue, "attn_window_size"), 1, int.MaxValue, path, "attn_window_size") : null;
        return new SnacConfig(
            Int("sampling_rate", 1, ModelLimits.MaxSampleRate),
            encoderDim,
            encoderRates,
            ModelLimits.InRange(latent, 1, ModelLimits.MaxWidth, path, "latent_dim"),
            decoderDim,
            decoderRates,
            Int("codebook_size", 1, ModelLimits.MaxCodebookSize),
            Int("codebook_dim", 1, ModelLimits.MaxWidth),
            strides,
            Bool("noise"),
            Bool("depthwise"),
            window);
    }
}
