using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>llama.cpp's token types (<c>llama_token_type</c>), as GGUF's <c>tokenizer.ggml.token_type</c> stores them.</summary>
public enum GgufTokenType
{
    /// <summary>An ordinary BPE token.</summary>
    Normal = 1,
    /// <summary>A special token the tokenizer never produces from plain text.</summary>
    Control = 3,
    /// <summary>A placeholder row past the tokenizer's vocabulary.</summary>
    Unused = 5,
}

/// <summary>
/// The parts of a Hugging Face byte-level BPE <c>tokenizer.json</c> that llama.cpp's <c>gpt2</c> tokenizer needs:
/// tokens in id order padded to the model's row count, their types, and the merges.
/// </summary>
public sealed class HfTokenizer
{
    private HfTokenizer(string[] tokens, GgufTokenType[] types, string[] merges, int tokenizerVocabularySize)
    {
        Tokens = tokens;
        TokenTypes = types;
        Merges = merges;
        TokenizerVocabularySize = tokenizerVocabularySize;
    }

    /// <summary>One string per embedding row; rows the tokenizer does not define are <c>[PADn]</c> placeholders.</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>The llama.cpp type of each token.</summary>
    public IReadOnlyList<GgufTokenType> TokenTypes { get; }

    /// <summary>BPE merges as "left right", highest priority first.</summary>
    public IReadOnlyList<string> Merges { get; }

    /// <summary>How many ids the tokenizer itself defines (vocabulary plus added tokens).</summary>
    public int TokenizerVocabularySize { get; }

    /// <summary>
    /// A merge-free byte-level vocabulary (every byte a token, GPT-2's byte-to-character mapping, plus
    /// <c>&lt;|endoftext|&gt;</c>), for synthetic models made without a tokenizer file: llama.cpp tokenizes any text with it.
    /// </summary>
    public static HfTokenizer ByteLevel(int rowCount)
    {
        const int byteTokens = 256;
        var tokens = new string[rowCount];
        var types = new GgufTokenType[rowCount];
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        int nextUnprintable = 0;
        for (int b = 0; b < byteTokens; b++)
        {
            tokens[b] = ((char)(printable.Contains(b) ? b : byteTokens + nextUnprintable++)).ToString();
            types[b] = GgufTokenType.Normal;
        }

        tokens[byteTokens] = "<|endoftext|>";
        types[byteTokens] = GgufTokenType.Control;
        for (int id = byteTokens + 1; id < rowCount; id++)
        {
            tokens[id] = $"[PAD{id}]";
            types[id] = GgufTokenType.Unused;
        }

        return new HfTokenizer(tokens, types, [], byteTokens + 1);
    }

    /// <summary>Reads <paramref name="path"/> and pads the token list to <paramref name="rowCount"/> entries.</summary>
    public static HfTokenizer Load(string path, int rowCount)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        try
        {
            using var stream = File.OpenRead(path);
            using var document = JsonDocument.Parse(stream);
            return Parse(path, document.RootElement, rowCount);
        }
        catch (JsonException e)
        {
            throw new ModelFileException(path, $"not valid JSON: {e.Message}", innerException: e);
        }
    }

    private static HfTokenizer Parse(string path, JsonElement root, int rowCount)
    {
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFileException(path, "no tokenizer model; is this a Hugging Face tokenizer.json?", "model");
        }

        string modelType = model.TryGetProperty("type", out var typeElement) ? typeElement.GetString() ?? "" : "";
        if (modelType != "BPE")
        {
            throw new ModelFileException(path, $"tokenizer type '{modelType}' is not supported; Mini-Omni uses byte-level BPE.", "model.type");
        }

        var tokens = new string?[rowCount];
        var types = new GgufTokenType[rowCount];
        int defined = 0;
        void Define(string token, int id, GgufTokenType type, string key)
        {
            if ((uint)id >= (uint)rowCount)
            {
                throw new ModelFileException(path, $"token '{token}' has id {id}, outside the model's {rowCount} rows.", key);
            }

            if (tokens[id] is null)
            {
                defined++;
            }

            tokens[id] = token;
            types[id] = type;
        }

        foreach (var entry in RequireProperty(path, model, "vocab", "model.vocab").EnumerateObject())
        {
            Define(entry.Name, entry.Value.GetInt32(), GgufTokenType.Normal, "model.vocab");
        }

        if (root.TryGetProperty("added_tokens", out var added))
        {
            foreach (var token in added.EnumerateArray())
            {
                bool special = token.TryGetProperty("special", out var s) && s.GetBoolean();
                Define(token.GetProperty("content").GetString()!, token.GetProperty("id").GetInt32(),
                    special ? GgufTokenType.Control : GgufTokenType.Normal, "added_tokens");
            }
        }

        for (int id = 0; id < rowCount; id++)
        {
            if (tokens[id] is null)
            {
                tokens[id] = $"[PAD{id}]";
                types[id] = GgufTokenType.Unused;
            }
        }

        var merges = RequireProperty(path, model, "merges", "model.merges").EnumerateArray()
            .Select(merge => merge.ValueKind == JsonValueKind.Array
                ? $"{merge[0].GetString()} {merge[1].GetString()}" // tokenizers >= 0.20 store pairs
                : merge.GetString()!)
            .ToArray();
        return new HfTokenizer(tokens!, types, merges, defined);
    }

    private static JsonElement RequireProperty(string path, JsonElement parent, string name, string key) =>
        parent.TryGetProperty(name, out var value) ? value : throw new ModelFileException(path, "missing.", key);
}
