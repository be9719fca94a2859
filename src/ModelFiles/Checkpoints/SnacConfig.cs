using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>SNAC's <c>config.json</c>.</summary>
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
    /// <summary>Reads <paramref name="path"/>; a missing key is an error naming it.</summary>
    public static SnacConfig Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            var root = document.RootElement;
            JsonElement Required(string key) => root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null
                ? value
                : throw new ModelFileException(path, "required key is missing; is this SNAC's config.json?", key);
            int[] Ints(string key) => [.. Required(key).EnumerateArray().Select(v => v.GetInt32())];

            int encoderDim = Required("encoder_dim").GetInt32();
            int[] encoderRates = Ints("encoder_rates");
            // SNAC derives the latent width from the encoder when the config leaves it out.
            int latent = root.TryGetProperty("latent_dim", out var latentValue) && latentValue.ValueKind == JsonValueKind.Number
                ? latentValue.GetInt32()
                : encoderDim * (1 << encoderRates.Length);
            int? window = root.TryGetProperty("attn_window_size", out var windowValue) && windowValue.ValueKind == JsonValueKind.Number ? windowValue.GetInt32() : null;
            return new SnacConfig(
                Required("sampling_rate").GetInt32(),
                encoderDim,
                encoderRates,
                latent,
                Required("decoder_dim").GetInt32(),
                Ints("decoder_rates"),
                Required("codebook_size").GetInt32(),
                Required("codebook_dim").GetInt32(),
                Ints("vq_strides"),
                root.TryGetProperty("noise", out var noise) && noise.GetBoolean(),
                root.TryGetProperty("depthwise", out var depthwise) && depthwise.GetBoolean(),
                window);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ModelFileException(path, $"not a valid SNAC config: {e.Message}", innerException: e);
        }
    }
}
