namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>The hyper-parameters of a <c>qwen2</c> GGUF, as llama.cpp reads them.</summary>
public sealed record Qwen2Hyperparameters(
    int LayerCount,
    int EmbeddingLength,
    int FeedForwardLength,
    int HeadCount,
    int KvHeadCount,
    int HeadSize,
    int ContextLength,
    float NormEpsilon,
    float RopeBase);

/// <summary>
/// Checks the backbone and vocabulary GGUFs before llama.cpp sees them. llama.cpp asserts (and so ends the process) on
/// some inconsistent files rather than failing the load, and reads keys this project never writes; so a file is held
/// to exactly what MiniOmni.SK writes (and llama.cpp's quantizer keeps): the <c>qwen2</c> keys, each in range and
/// consistent with the others, the tokenizer's keys, and the tensor table of the architecture, every tensor of the
/// expected shape and a type the graph can use. Every failure is a <see cref="ModelFileException"/> naming the key or tensor.
/// </summary>
public static class Qwen2GgufChecks
{
    private const string Arch = "qwen2";

    /// <summary>Types llama.cpp's CPU and GPU backends multiply by; one-dimensional tensors (norms, biases) must be F32.</summary>
    private static readonly HashSet<GgmlType> MatrixTypes =
    [
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
        GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL,
    ];

    /// <summary>Keys of both files besides <c>general.*</c>, <c>quantize.*</c> and the tokenizer's.</summary>
    private static readonly HashSet<string> ArchitectureKeys =
    [
        $"{Arch}.context_length", $"{Arch}.embedding_length", $"{Arch}.block_count", $"{Arch}.feed_forward_length",
        $"{Arch}.attention.head_count", $"{Arch}.attention.head_count_kv", $"{Arch}.attention.key_length",
        $"{Arch}.attention.value_length", $"{Arch}.rope.freq_base", $"{Arch}.rope.dimension_count",
        $"{Arch}.attention.layer_norm_rms_epsilon",
    ];

    private static readonly HashSet<string> BackboneKeys = [.. ArchitectureKeys, $"{Arch}.vocab_size", "tokenizer.ggml.model", MiniOmniGgufKeys.HeadlessBackbone];

    private static readonly HashSet<string> VocabularyKeys =
    [
        .. ArchitectureKeys, "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
    ];

    /// <summary>Checks the headless backbone file (<c>backbone.gguf</c>) and returns its hyper-parameters.</summary>
    public static Qwen2Hyperparameters CheckBackbone(GgufFile file)
    {
        CheckKeys(file, BackboneKeys);
        var parameters = ReadHyperparameters(file);
        if (file.GetString("tokenizer.ggml.model") != "none")
        {
            throw new ModelFileException(file.Path, $"'{file.GetString("tokenizer.ggml.model")}': the backbone file carries no tokenizer ('none'); the tokenizer is in the vocabulary file.", "tokenizer.ggml.model");
        }

        int rows = UInt32(file, $"{Arch}.vocab_size", 1, ModelLimits.MaxVocabulary);
        int e = parameters.EmbeddingLength;
        int kv = parameters.KvHeadCount * parameters.HeadSize;
        int ff = parameters.FeedForwardLength;
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal)
        {
            ["token_embd.weight"] = [e, rows],
            ["output_norm.weight"] = [e],
        };
        for (int layer = 0; layer < parameters.LayerCount; layer++)
        {
            string block = $"blk.{layer}.";
            expected[block + "attn_norm.weight"] = [e];
            expected[block + "attn_q.weight"] = [e, e];
            expected[block + "attn_k.weight"] = [e, kv];
            expected[block + "attn_v.weight"] = [e, kv];
            expected[block + "attn_q.bias"] = [e];
            expected[block + "attn_k.bias"] = [kv];
            expected[block + "attn_v.bias"] = [kv];
            expected[block + "attn_output.weight"] = [e, e];
            expected[block + "ffn_norm.weight"] = [e];
            expected[block + "ffn_gate.weight"] = [e, ff];
            expected[block + "ffn_up.weight"] = [e, ff];
            expected[block + "ffn_down.weight"] = [ff, e];
        }

        // An output head is optional for llama.cpp (it reuses the embeddings); a file of ours has none.
        if (file.Tensors.ContainsKey("output.weight"))
        {
            expected["output.weight"] = [e, rows];
        }

        CheckTensors(file, expected, name => name.EndsWith(".weight", StringComparison.Ordinal) && expected[name].Length == 2 ? MatrixTypes : [GgmlType.F32]);
        return parameters;
    }

    /// <summary>
    /// Checks the vocabulary file (<c>vocabulary.gguf</c>): the architecture llama.cpp reads even vocabulary-only, the
    /// tokenizer, and the embedding table and head of one row per token. Returns its hyper-parameters and row count.
    /// </summary>
    public static (Qwen2Hyperparameters Parameters, int RowCount) CheckVocabulary(GgufFile file)
    {
        CheckKeys(file, VocabularyKeys);
        var parameters = ReadHyperparameters(file);
        RequireString(file, "tokenizer.ggml.model", "gpt2");
        RequireString(file, "tokenizer.ggml.pre", "qwen2");
        string[] tokens = Array<string>(file, "tokenizer.ggml.tokens");
        int rows = tokens.Length;
        ModelLimits.InRange(rows, 1, ModelLimits.MaxVocabulary, file.Path, "tokenizer.ggml.tokens");
        // llama.cpp maps each token's text to its id and aborts when two ids share a text; an empty text becomes "[EMPTY_n]".
        var seen = new Dictionary<string, int>(rows, StringComparer.Ordinal);
        for (int id = 0; id < rows; id++)
        {
            if (tokens[id].Length == 0)
            {
                throw new ModelFileException(file.Path, $"token {id} has empty text.", "tokenizer.ggml.tokens");
            }

            if (!seen.TryAdd(tokens[id], id))
            {
                throw new ModelFileException(file.Path, $"tokens {seen[tokens[id]]} and {id} have the same text '{tokens[id]}'.", "tokenizer.ggml.tokens");
            }
        }

        int[] types = Array<int>(file, "tokenizer.ggml.token_type");
        if (types.Length != rows)
        {
            throw new ModelFileException(file.Path, $"{types.Length} token types for {rows} tokens.", "tokenizer.ggml.token_type");
        }

        int badType = System.Array.FindIndex(types, t => t is < 0 or > 6);
        if (badType >= 0)
        {
            throw new ModelFileException(file.Path, $"token {badType} has type {types[badType]}; llama.cpp's types are 0 to 6.", "tokenizer.ggml.token_type");
        }

        string[] merges = Array<string>(file, "tokenizer.ggml.merges");
        int badMerge = System.Array.FindIndex(merges, m => m.IndexOf(' ', 1) is < 1 || m.IndexOf(' ', 1) == m.Length - 1);
        if (badMerge >= 0)
        {
            throw new ModelFileException(file.Path, $"merge {badMerge} '{merges[badMerge]}' is not two tokens separated by a space.", "tokenizer.ggml.merges");
        }

        foreach (string key in new[] { "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id" })
        {
            if (file.Metadata.ContainsKey(key))
            {
                UInt32(file, key, 0, rows - 1);
            }
        }

        if (file.Metadata.TryGetValue("tokenizer.ggml.add_bos_token", out object? addBos) && addBos is not bool)
        {
            throw new ModelFileException(file.Path, $"expected a boolean, found {addBos.GetType().Name}.", "tokenizer.ggml.add_bos_token");
        }

        long e = parameters.EmbeddingLength;
        CheckTensors(file, new Dictionary<string, long[]>(StringComparer.Ordinal)
        {
            ["token_embd.weight"] = [e, rows],
            ["output.weight"] = [e, rows],
        }, name => name == "token_embd.weight"
            ? [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0] // rows the embedding mix decodes in C#
            : [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0]); // the output heads' ggml graph
        return (parameters, rows);
    }

    private static Qwen2Hyperparameters ReadHyperparameters(GgufFile file)
    {
        RequireString(file, "general.architecture", Arch);
        int layers = UInt32(file, $"{Arch}.block_count", 1, ModelLimits.MaxLayers);
        int width = UInt32(file, $"{Arch}.embedding_length", 1, ModelLimits.MaxWidth);
        int feedForward = UInt32(file, $"{Arch}.feed_forward_length", 1, ModelLimits.MaxFeedForward);
        int heads = UInt32(file, $"{Arch}.attention.head_count", 1, ModelLimits.MaxHeads);
        if (width % heads != 0)
        {
            throw new ModelFileException(file.Path, $"{heads} heads do not divide the width {width}.", $"{Arch}.attention.head_count");
        }

        int kvHeads = UInt32(file, $"{Arch}.attention.head_count_kv", 1, heads);
        if (heads % kvHeads != 0)
        {
            throw new ModelFileException(file.Path, $"{kvHeads} key/value heads do not divide {heads} heads.", $"{Arch}.attention.head_count_kv");
        }

        // llama.cpp's qwen2 graph asserts that keys, values and rotary dimensions are all one head's width.
        int headSize = width / heads;
        foreach (string key in new[] { $"{Arch}.attention.key_length", $"{Arch}.attention.value_length", $"{Arch}.rope.dimension_count" })
        {
            if (file.Metadata.ContainsKey(key) && UInt32(file, key, 0, ModelLimits.MaxWidth) != headSize)
            {
                throw new ModelFileException(file.Path, $"{file.GetInteger(key)} is not the head size {headSize} (width {width} / {heads} heads), which llama.cpp's qwen2 requires.", key);
            }
        }

        if (headSize % 2 != 0)
        {
            throw new ModelFileException(file.Path, $"heads of {headSize} dimensions cannot be rotated in pairs.", $"{Arch}.attention.head_count");
        }

        return new Qwen2Hyperparameters(
            layers, width, feedForward, heads, kvHeads, headSize,
            UInt32(file, $"{Arch}.context_length", 1, ModelLimits.MaxContext),
            PositiveFloat(file, $"{Arch}.attention.layer_norm_rms_epsilon"),
            PositiveFloat(file, $"{Arch}.rope.freq_base"));
    }

    // general.* (names, file type, alignment) and quantize.* are informational or checked by the reader; anything else
    // llama.cpp might act on must be a key this project writes.
    private static void CheckKeys(GgufFile file, HashSet<string> allowed)
    {
        foreach (var (key, value) in file.Metadata)
        {
            if (key.StartsWith("quantize.", StringComparison.Ordinal))
            {
                continue;
            }

            if (key.StartsWith("general.", StringComparison.Ordinal))
            {
                if (key is "general.file_type" or "general.quantization_version" && value is not uint)
                {
                    throw new ModelFileException(file.Path, $"expected a u32, found {value.GetType().Name}.", key);
                }

                if (key is "general.architecture" or "general.name" && value is not string)
                {
                    throw new ModelFileException(file.Path, $"expected a string, found {value.GetType().Name}.", key);
                }

                continue;
            }

            if (!allowed.Contains(key))
            {
                throw new ModelFileException(file.Path, "not a key of the files MiniOmni.SK writes, and llama.cpp may act on it: refusing the file.", key);
            }
        }
    }

    private static void CheckTensors(GgufFile file, Dictionary<string, long[]> expected, Func<string, IReadOnlyCollection<GgmlType>> allowedTypes)
    {
        foreach (var tensor in file.Tensors.Values)
        {
            if (!expected.ContainsKey(tensor.Name))
            {
                throw new ModelFileException(file.Path, "not a tensor of this file's architecture: refusing the file.", tensor.Name);
            }
        }

        foreach (var (name, dims) in expected)
        {
            var tensor = file.GetTensor(name);
            if (!GgufFile.SameShape(tensor.Dims, dims))
            {
                throw new ModelFileException(file.Path, $"dims [{string.Join(", ", tensor.Dims)}]; the hyper-parameters make it [{string.Join(", ", dims)}].", name);
            }

            var types = allowedTypes(name);
            if (!types.Contains(tensor.Type))
            {
                throw new ModelFileException(file.Path, $"{tensor.Type} is not a type this tensor can have here ({string.Join(", ", types)}).", name);
            }
        }
    }

    private static int UInt32(GgufFile file, string key, int min, int max)
    {
        if (!file.Metadata.TryGetValue(key, out object? value))
        {
            throw new ModelFileException(file.Path, "required key is missing.", key);
        }

        // llama.cpp reads these as u32 and refuses (or misreads) other types: hold them to what is written.
        return value is uint number
            ? ModelLimits.InRange(number, min, max, file.Path, key)
            : throw new ModelFileException(file.Path, $"expected a u32, found {value.GetType().Name} {value}.", key);
    }

    private static float PositiveFloat(GgufFile file, string key)
    {
        if (!file.Metadata.TryGetValue(key, out object? value))
        {
            throw new ModelFileException(file.Path, "required key is missing.", key);
        }

        return value is float number && float.IsFinite(number) && number > 0
            ? number
            : throw new ModelFileException(file.Path, $"expected a finite f32 greater than 0, found {value.GetType().Name} {value}.", key);
    }

    private static void RequireString(GgufFile file, string key, string expected)
    {
        string value = file.GetString(key);
        if (value != expected)
        {
            throw new ModelFileException(file.Path, $"'{value}' where MiniOmni.SK's files say '{expected}'.", key);
        }
    }

    private static T[] Array<T>(GgufFile file, string key) => file.Metadata.TryGetValue(key, out object? value)
        ? value as T[] ?? throw new ModelFileException(file.Path, $"expected an array of {typeof(T).Name}, found {value.GetType().Name}.", key)
        : throw new ModelFileException(file.Path, "required key is missing.", key);
}
