using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>The keys of litgpt's flat <c>model_config.yaml</c> that Mini-Omni's conversion needs.</summary>
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
    /// <summary>Reads <paramref name="path"/>; a missing or malformed key is an error naming it.</summary>
    public static LitGptConfig Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        Dictionary<string, object?> values;
        try
        {
            values = new DeserializerBuilder().Build().Deserialize<Dictionary<string, object?>>(File.ReadAllText(path))
                ?? throw new ModelFileException(path, "the file is empty.");
        }
        catch (YamlException e)
        {
            throw new ModelFileException(path, $"not valid YAML: {e.Message}", innerException: e);
        }

        var reader = new Reader(path, values);
        return new LitGptConfig(
            reader.Text("name", "mini-omni"),
            reader.Int("n_layer"),
            reader.Int("n_head"),
            reader.Int("n_query_groups"),
            reader.Int("head_size"),
            reader.Int("n_embd"),
            reader.Int("intermediate_size"),
            reader.Double("norm_eps"),
            reader.Double("rope_base"),
            reader.Int("padded_vocab_size"),
            reader.Int("text_vocab_size"),
            reader.Int("audio_vocab_size"),
            reader.Int("whisper_adapter_dim"),
            reader.Text("asr_adapter", "llamamlp"),
            reader.Bool("post_adapter", false),
            reader.Bool("tie_word_embeddings", false),
            reader.Bool("add_qkv_bias", true),
            reader.Bool("bias", false),
            reader.Int("block_size"));
    }

    private sealed class Reader(string path, Dictionary<string, object?> values)
    {
        public int Int(string key) => int.TryParse(Required(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new ModelFileException(path, $"expected an integer, found '{values[key]}'.", key);

        public double Double(string key) => double.TryParse(Required(key), NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new ModelFileException(path, $"expected a number, found '{values[key]}'.", key);

        public bool Bool(string key, bool fallback) => values.TryGetValue(key, out object? raw) && raw is not null
            ? bool.TryParse(raw.ToString(), out bool value) ? value : throw new ModelFileException(path, $"expected true or false, found '{raw}'.", key)
            : fallback;

        public string Text(string key, string fallback) => values.TryGetValue(key, out object? raw) && raw is not null ? raw.ToString()! : fallback;

        private string Required(string key) => values.TryGetValue(key, out object? raw) && raw is not null
            ? raw.ToString()!
            : throw new ModelFileException(path, "required key is missing; is this Mini-Omni's model_config.yaml?", key);
    }
}
