using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>A summary of one GGUF file of a model directory.</summary>
public sealed record GgufSummary(
    string Path,
    long SizeBytes,
    string Architecture,
    int TensorCount,
    long ParameterCount,
    IReadOnlyDictionary<GgmlType, int> TensorsByType,
    IReadOnlyList<KeyValuePair<string, string>> Properties)
{
    /// <summary>
    /// The tensors holding a NaN or an infinity, each as "name: count non-finite of elements (first at element i: value)".
    /// A model with any loads, but its answers would be noise: the engine refuses an answer whose first step turns
    /// non-finite.
    /// </summary>
    public IReadOnlyList<string> NonFiniteTensors { get; init; } = [];

    /// <summary>The tensors whose type this reader cannot dequantize (the k-quants and 4-bit types), so not scanned for NaN and Inf.</summary>
    public IReadOnlyList<string> UnscannedTensors { get; init; } = [];
}

/// <summary>Reads what a model directory holds, for <c>miniomni inspect</c>.</summary>
public static class ModelInspection
{
    /// <summary>Summarises the backbone, vocabulary and audio files of <paramref name="directory"/>.</summary>
    public static IReadOnlyList<GgufSummary> Inspect(string directory)
    {
        var model = new ModelDirectory(directory).EnsureComplete();
        return [Summarise(model.BackbonePath, BackboneProperties), Summarise(model.VocabularyPath, VocabularyProperties), Summarise(model.AudioPath, AudioProperties)];
    }

    private static GgufSummary Summarise(string path, Func<GgufFile, IEnumerable<(string, string)>> properties)
    {
        using var file = GgufFile.Open(path);
        var byType = file.Tensors.Values.GroupBy(t => t.Type).ToDictionary(g => g.Key, g => g.Count());
        var (nonFinite, unscanned) = ScanForNonFinite(file);
        return new GgufSummary(
            path,
            new FileInfo(path).Length,
            file.GetString("general.architecture"),
            file.Tensors.Count,
            file.Tensors.Values.Sum(t => t.ElementCount),
            byType,
            properties(file).Select(p => KeyValuePair.Create(p.Item1, p.Item2)).ToList())
        {
            NonFiniteTensors = nonFinite,
            UnscannedTensors = unscanned,
        };
    }

    // Every value of every tensor this reader can dequantize, row by row.
    private static (List<string> NonFinite, List<string> Unscanned) ScanForNonFinite(GgufFile file)
    {
        var nonFinite = new List<string>();
        var unscanned = new List<string>();
        foreach (var tensor in file.Tensors.Values)
        {
            if (tensor.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0))
            {
                unscanned.Add($"{tensor.Name} ({tensor.Type})");
                continue;
            }

            int width = (int)tensor.Dims[0];
            var row = new float[width];
            long rows = tensor.ElementCount / width, count = 0, first = -1;
            float firstValue = 0;
            for (long r = 0; r < rows; r++)
            {
                file.ReadRow(tensor, r, row);
                for (int i = 0; i < width; i++)
                {
                    if (!float.IsFinite(row[i]))
                    {
                        if (count++ == 0)
                        {
                            first = r * width + i;
                            firstValue = row[i];
                        }
                    }
                }
            }

            if (count > 0)
            {
                nonFinite.Add($"{tensor.Name}: {count} non-finite of {tensor.ElementCount} (first at element {first}: {firstValue})");
            }
        }

        return (nonFinite, unscanned);
    }

    private static IEnumerable<(string, string)> BackboneProperties(GgufFile file)
    {
        string arch = file.GetString("general.architecture");
        yield return ("name", Optional(file, "general.name"));
        yield return ("layers", Optional(file, $"{arch}.block_count"));
        yield return ("embedding", Optional(file, $"{arch}.embedding_length"));
        yield return ("feed-forward", Optional(file, $"{arch}.feed_forward_length"));
        yield return ("heads / kv heads", $"{Optional(file, $"{arch}.attention.head_count")} / {Optional(file, $"{arch}.attention.head_count_kv")}");
        yield return ("context", Optional(file, $"{arch}.context_length"));
        yield return ("rope base", Optional(file, $"{arch}.rope.freq_base"));
        yield return ("output head", file.Metadata.ContainsKey(MiniOmniGgufKeys.HeadlessBackbone) ? "none (in the vocabulary file)" : "in llama.cpp (converted by an earlier version: convert again)");
    }

    private static IEnumerable<(string, string)> VocabularyProperties(GgufFile file)
    {
        yield return ("vocabulary rows", file.Tensors.TryGetValue("token_embd.weight", out var embd) ? embd.Dims[1].ToString() : "?");
        yield return ("token embeddings", embd?.Type.ToString() ?? "?");
        yield return ("output head", file.Tensors.TryGetValue("output.weight", out var head) ? head.Type.ToString() : "?");
        yield return ("tokenizer", $"{Optional(file, "tokenizer.ggml.model")} / {Optional(file, "tokenizer.ggml.pre")}");
    }

    private static IEnumerable<(string, string)> AudioProperties(GgufFile file)
    {
        yield return ("name", Optional(file, MiniOmniGgufKeys.Name));
        yield return ("converted as", Optional(file, MiniOmniGgufKeys.FileType));
        yield return ("whisper", $"{Optional(file, MiniOmniGgufKeys.WhisperLayers)} layers, width {Optional(file, MiniOmniGgufKeys.WhisperWidth)}, {Optional(file, MiniOmniGgufKeys.WhisperHeads)} heads, {Optional(file, MiniOmniGgufKeys.WhisperMelBins)} mels");
        yield return ("adapter", Optional(file, MiniOmniGgufKeys.AdapterType));
        yield return ("snac", $"{Optional(file, MiniOmniGgufKeys.SnacSampleRate)} Hz, latent {Optional(file, MiniOmniGgufKeys.SnacLatentDim)}, decoder {Optional(file, MiniOmniGgufKeys.SnacDecoderDim)}, rates [{Optional(file, MiniOmniGgufKeys.SnacDecoderRates)}], strides [{Optional(file, MiniOmniGgufKeys.SnacStrides)}]");
        yield return ("vocabularies", $"text {Optional(file, MiniOmniGgufKeys.TextVocabularySize)}, audio {Optional(file, MiniOmniGgufKeys.AudioVocabularySize)} x {Optional(file, MiniOmniGgufKeys.AudioLayerCount)}, rows {Optional(file, MiniOmniGgufKeys.PaddedVocabularySize)}");
        yield return ("text specials", $"eot {Optional(file, MiniOmniGgufKeys.TokenEndOfText)}, pad {Optional(file, MiniOmniGgufKeys.TokenPadText)}, input {Optional(file, MiniOmniGgufKeys.TokenInputText)}, answer {Optional(file, MiniOmniGgufKeys.TokenAnswerText)}, asr {Optional(file, MiniOmniGgufKeys.TokenAsr)}");
        yield return ("audio specials", $"eoa {Optional(file, MiniOmniGgufKeys.TokenEndOfAudio)}, pad {Optional(file, MiniOmniGgufKeys.TokenPadAudio)}, input {Optional(file, MiniOmniGgufKeys.TokenInputAudio)}, answer {Optional(file, MiniOmniGgufKeys.TokenAnswerAudio)}");
    }

    private static string Optional(GgufFile file, string key) => file.Metadata.TryGetValue(key, out object? value)
        ? value switch
        {
            Array array => string.Join(", ", array.Cast<object>()),
            _ => value.ToString() ?? "",
        }
        : "?";
}
