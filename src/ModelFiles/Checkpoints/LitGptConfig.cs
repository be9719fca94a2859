using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// litgpt's flat <c>model_config.yaml</c> as Mini-Omni's <c>litgpt/config.py</c> reads it. Absent keys take litgpt's
/// defaults. Every key that changes what the model computes is either supported or refused with an error naming the
/// key and its value; keys that change nothing at inference (dropout, training switches, <c>gelu_approximate</c> with
/// LLaMA's MLP) and keys litgpt does not know are ignored.
/// </summary>
public sealed record LitGptConfig(
    string Name,
    int NLayer,
    int NHead,
    int NQueryGroups,
    int HeadSize,
    int NEmbd,
    int IntermediateSize,
    double NormEps,
    double RopeBase,
    int PaddedVocabSize,
    int TextVocabSize,
    int AudioVocabSize,
    int WhisperAdapterDim,
    string AsrAdapter,
    bool PostAdapter,
    bool TieWordEmbeddings,
    bool AddQkvBias,
    bool Bias,
    int BlockSize)
{
    /// <summary>The largest <c>model_config.yaml</c> read (the release's is about 1.5 KB).</summary>
    public const int MaxFileBytes = 1 << 20;

    /// <summary>Audio streams of Mini-Omni: seven SNAC layers beside the text.</summary>
    public const int AudioLayerCount = 7;

    /// <summary>Special ids Mini-Omni reserves at the end of each of its text and audio vocabularies.</summary>
    public const int ReservedSpecialIds = 64;

    private const int MaxNesting = 32;

    /// <summary>Reads and checks <paramref name="path"/>; a missing, malformed, out-of-range or unsupported key is an error naming it.</summary>
    public static LitGptConfig Load(string path)
    {
        var reader = new Reader(path, Parse(path));

        // The shape (litgpt's __post_init__ derives what is left out).
        int nLayer = reader.Int("n_layer", min: 1, max: ModelLimits.MaxLayers);
        int nHead = reader.Int("n_head", min: 1, max: ModelLimits.MaxHeads);
        int nEmbd = reader.Int("n_embd", min: 1, max: ModelLimits.MaxWidth);
        int headSize = reader.OptionalInt("head_size", min: 1, max: ModelLimits.MaxWidth)
            ?? (nEmbd % nHead == 0 ? nEmbd / nHead : throw reader.Error("head_size", $"is absent, and n_embd {nEmbd} does not divide into n_head {nHead} heads."));
        int nQueryGroups = reader.OptionalInt("n_query_groups", min: 1, max: nHead) ?? nHead;
        string mlpClass = reader.Text("mlp_class_name", "GptNeoxMLP");
        int intermediate = reader.OptionalInt("intermediate_size", min: 1, max: ModelLimits.MaxFeedForward)
            ?? (mlpClass == "LLaMAMLP" ? throw reader.Error("intermediate_size", "is required with LLaMAMLP (litgpt refuses such a config).") : checked(4 * nEmbd));
        int paddedVocab = reader.OptionalInt("padded_vocab_size", min: 1, max: ModelLimits.MaxVocabulary)
            ?? PadVocabulary(reader.Int("vocab_size", 50254, min: 1, max: ModelLimits.MaxVocabulary), reader.Int("padding_multiple", 512, min: 1, max: ModelLimits.MaxVocabulary), reader);
        double normEps = reader.Double("norm_eps", 1e-5, positive: true);
        double ropeBase = reader.Double("rope_base", 10000, positive: true);
        int blockSize = reader.Int("block_size", 4096, min: 1, max: ModelLimits.MaxContext);
        int textVocab = reader.Int("text_vocab_size", 152000, min: ReservedSpecialIds + 1, max: ModelLimits.MaxVocabulary);
        int audioVocab = reader.Int("audio_vocab_size", 4160, min: ReservedSpecialIds + 1, max: ModelLimits.MaxVocabulary);
        int adapterDim = reader.Int("whisper_adapter_dim", 768, min: 1, max: ModelLimits.MaxWidth);
        string asrAdapter = reader.Text("asr_adapter", "llamamlp");
        string name = reader.Text("name", "");
        bool bias = reader.Bool("bias", true);
        bool addQkvBias = reader.OptionalBool("add_qkv_bias") ?? bias;
        bool postAdapter = reader.Bool("post_adapter", false);
        bool tied = reader.Bool("tie_word_embeddings", false);

        // Relations llama.cpp's qwen2 graph and Mini-Omni's heads rely on.
        if (nHead % nQueryGroups != 0)
        {
            throw reader.Error("n_query_groups", $"{nQueryGroups} does not divide n_head {nHead}.");
        }

        if ((long)nHead * headSize != nEmbd)
        {
            throw reader.Error("head_size", $"{headSize} x n_head {nHead} is not n_embd {nEmbd}; llama.cpp's qwen2 needs the attention as wide as the model.");
        }

        if (headSize % 2 != 0)
        {
            throw reader.Error("head_size", $"{headSize} is odd; rotary embeddings rotate pairs of dimensions.");
        }

        if ((long)textVocab + (long)AudioLayerCount * audioVocab > paddedVocab)
        {
            throw reader.Error("padded_vocab_size", $"{paddedVocab} rows cannot hold text_vocab_size {textVocab} plus {AudioLayerCount} audio layers of audio_vocab_size {audioVocab}.");
        }

        // What the release computes; anything else is a different model, refused by name rather than converted wrongly.
        reader.Require("parallel_residual", reader.Bool("parallel_residual", true), false, "Qwen2 adds attention and MLP one after the other");
        reader.Require("shared_attention_norm", reader.Bool("shared_attention_norm", false), false, "Qwen2 normalises before the MLP on its own");
        reader.Require("scale_embeddings", reader.Bool("scale_embeddings", false), false, "Qwen2 does not scale its embeddings");
        reader.Require("lm_head_bias", reader.Bool("lm_head_bias", false), false, "Mini-Omni's heads have no bias");
        reader.Require("bias", bias, false, "Qwen2 has no bias besides q/k/v");
        reader.Require("add_qkv_bias", addQkvBias, true, "Qwen2 has q/k/v biases (litgpt's default follows 'bias')");
        reader.Require("post_adapter", postAdapter, false, "the release has no post-adapter blocks");
        reader.Require("norm_class_name", reader.Text("norm_class_name", "LayerNorm"), "RMSNorm", "Qwen2 uses RMSNorm");
        reader.Require("mlp_class_name", mlpClass, "LLaMAMLP", "Qwen2 uses a SwiGLU MLP (LLaMAMLP)");
        reader.Require("rope_condense_ratio", reader.Int("rope_condense_ratio", 1, min: int.MinValue, max: int.MaxValue), 1, "llama.cpp's qwen2 reads no position condensing");
        if (name.Contains("Gemma", StringComparison.Ordinal))
        {
            throw reader.Error("name", $"'{name}': litgpt gives RMSNorm a unit offset for Gemma models, which Qwen2 does not have.");
        }

        double rotary = reader.Double("rotary_percentage", 0.25, positive: false);
        if ((int)(rotary * headSize) != headSize)
        {
            throw reader.Error("rotary_percentage", $"{rotary.ToString(CultureInfo.InvariantCulture)}{reader.Origin("rotary_percentage")} rotates {(int)(rotary * headSize)} of {headSize} dimensions per head; llama.cpp's qwen2 rotates all of them (1).");
        }

        if (asrAdapter is not ("llamamlp" or "mlp"))
        {
            throw reader.Error("asr_adapter", $"'{asrAdapter}' is not an adapter Mini-Omni has (llamamlp or mlp).");
        }

        return new LitGptConfig(
            name.Length > 0 ? name : "mini-omni", nLayer, nHead, nQueryGroups, headSize, nEmbd, intermediate, normEps, ropeBase,
            paddedVocab, textVocab, audioVocab, adapterDim, asrAdapter, postAdapter, tied, addQkvBias, bias, blockSize);
    }

    // litgpt's find_multiple: the vocabulary rounded up to the padding multiple.
    private static int PadVocabulary(int vocabulary, int multiple, Reader reader)
    {
        long padded = (vocabulary + (long)multiple - 1) / multiple * multiple;
        return padded <= ModelLimits.MaxVocabulary ? (int)padded : throw reader.Error("padded_vocab_size", $"is absent, and vocab_size {vocabulary} padded to {multiple} gives {padded} rows, more than {ModelLimits.MaxVocabulary}.");
    }

    private static Dictionary<string, object?> Parse(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes)
        {
            throw new ModelFileException(path, $"{length} bytes is far more than a model_config.yaml holds (at most {MaxFileBytes} are read).");
        }

        // Decoded as File.ReadAllText would, keeping the bytes and the encoding to place an error at its byte.
        byte[] bytes = File.ReadAllBytes(path);
        using var decoder = new StreamReader(new MemoryStream(bytes), System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        string text = decoder.ReadToEnd();
        var encoding = decoder.CurrentEncoding;
        int preamble = bytes.AsSpan().StartsWith(encoding.Preamble) ? encoding.Preamble.Length : 0;
        try
        {
            // YamlDotNet builds nested nodes recursively: measure the nesting with its (iterative) parser first.
            int depth = 0;
            var parser = new Parser(new StringReader(text));
            while (parser.MoveNext())
            {
                depth += parser.Current switch
                {
                    MappingStart or SequenceStart => 1,
                    MappingEnd or SequenceEnd => -1,
                    _ => 0,
                };
                if (depth > MaxNesting)
                {
                    throw TextPositions.Yaml(path, bytes, text, encoding, preamble, parser.Current!.Start, $"nested more than {MaxNesting} levels deep; litgpt's config is flat", null);
                }
            }

            return new DeserializerBuilder().Build().Deserialize<Dictionary<string, object?>>(text)
                ?? throw new ModelFileException(path, $"no YAML document in {bytes.Length} bytes (empty, or only comments); litgpt's keys are missing.") { Offset = bytes.Length };
        }
        catch (YamlException e)
        {
            throw TextPositions.Yaml(path, bytes, text, encoding, preamble, e.Start, $"not a YAML mapping of litgpt's keys: {e.Message}", e);
        }
    }

    private sealed class Reader(string path, Dictionary<string, object?> values)
    {
        public ModelFileException Error(string key, string message) => new(path, message, key);

        public int Int(string key, int min, int max) =>
            OptionalInt(key, min, max) ?? throw Error(key, "required key is missing; is this Mini-Omni's model_config.yaml?");

        public int Int(string key, int fallback, int min, int max) => OptionalInt(key, min, max) ?? fallback;

        public int? OptionalInt(string key, int min, int max)
        {
            if (Scalar(key) is not { } raw)
            {
                return null;
            }

            if (!long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
            {
                throw Error(key, $"expected an integer, found '{raw}'.");
            }

            return value >= min && value <= max ? (int)value : throw Error(key, $"{value} is outside {min}..{max}.");
        }

        public double Double(string key, double fallback, bool positive)
        {
            if (Scalar(key) is not { } raw)
            {
                return fallback;
            }

            if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            {
                throw Error(key, $"expected a finite number, found '{raw}'.");
            }

            return !positive || value > 0 ? value : throw Error(key, $"{raw} must be greater than 0.");
        }

        public bool Bool(string key, bool fallback) => OptionalBool(key) ?? fallback;

        public bool? OptionalBool(string key) => Scalar(key) is not { } raw
            ? null
            : bool.TryParse(raw, out bool value) ? value : throw Error(key, $"expected true or false, found '{raw}'.");

        public string Text(string key, string fallback) => Scalar(key) ?? fallback;

        public void Require<T>(string key, T value, T supported, string why)
        {
            if (!EqualityComparer<T>.Default.Equals(value, supported))
            {
                string shown = value is bool flag ? (flag ? "true" : "false") : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
                throw Error(key, $"{shown}{Origin(key)} is not supported: {why}.");
            }
        }

        public string Origin(string key) => values.ContainsKey(key) ? "" : " (litgpt's default, the key being absent)";

        // A scalar value, or null when the key is absent or null (litgpt's Optional fields); a mapping or list is an error.
        private string? Scalar(string key)
        {
            if (!values.TryGetValue(key, out object? raw) || raw is null)
            {
                return null;
            }

            return raw is string text
                ? text is "null" or "~" or "" ? null : text
                : throw Error(key, $"expected a single value, found a {(raw is System.Collections.IDictionary ? "mapping" : "list")}.");
        }
    }
}
