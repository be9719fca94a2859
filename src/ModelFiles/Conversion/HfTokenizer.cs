using MiniOmni.SK.ModelFiles.Checkpoints;
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

    /// <summary>The largest <c>tokenizer.json</c> read (Qwen2's is about 7 MB).</summary>
    public const long MaxFileBytes = 256L << 20;

    /// <summary>
    /// Reads <paramref name="path"/> and pads the token list to <paramref name="rowCount"/> entries. Everything
    /// llama.cpp's tokenizer would trip over later is checked here, naming the field: ids outside the rows, two tokens
    /// of one text, merges that are not two tokens, entries of the wrong JSON type.
    /// </summary>
    public static HfTokenizer Load(string path, int rowCount)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes)
        {
            throw new ModelFileException(path, $"{length} bytes is more than a tokenizer.json holds (at most {MaxFileBytes} are read).");
        }

        // Read whole (as JsonDocument would buffer a stream anyway), so that a syntax error can be placed at its byte.
        using var document = TextPositions.ParseJson(path, File.ReadAllBytes(path), "the file");
        return Parse(path, document.RootElement, rowCount);
    }

    private static HfTokenizer Parse(string path, JsonElement root, int rowCount)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFileException(path, "no tokenizer model; is this a Hugging Face tokenizer.json?", "model");
        }

        string modelType = model.TryGetProperty("type", out var typeElement) && typeElement.ValueKind == JsonValueKind.String ? typeElement.GetString()! : "";
        if (modelType != "BPE")
        {
            throw new ModelFileException(path, $"tokenizer type '{modelType}' is not supported; Mini-Omni uses byte-level BPE.", "model.type");
        }

        var tokens = new string?[rowCount];
        var types = new GgufTokenType[rowCount];
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int defined = 0;
        void Define(string? token, JsonElement idElement, GgufTokenType type, string key)
        {
            if (string.IsNullOrEmpty(token))
            {
                throw new ModelFileException(path, "a token with empty text.", key);
            }

            if (!IsWellFormed(token))
            {
                throw new ModelFileException(path, $"token '{token}' is not well-formed Unicode (a lone surrogate); it would not survive UTF-8.", key);
            }

            if (idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt32(out int id))
            {
                throw new ModelFileException(path, $"token '{token}' has the id {idElement.ValueKind} {idElement.GetRawText()}, not an integer.", key);
            }

            if ((uint)id >= (uint)rowCount)
            {
                throw new ModelFileException(path, $"token '{token}' has id {id}, outside the model's {rowCount} rows.", key);
            }

            // One id per text: llama.cpp's tokenizer aborts on a vocabulary where two ids share a text.
            if (ids.TryGetValue(token, out int other) && other != id)
            {
                throw new ModelFileException(path, $"token '{token}' has two ids, {other} and {id}.", key);
            }

            if (tokens[id] is { } previous && previous != token)
            {
                ids.Remove(previous);
            }

            if (tokens[id] is null)
            {
                defined++;
            }

            ids[token] = id;
            tokens[id] = token;
            types[id] = type;
        }

        var vocab = RequireProperty(path, model, "vocab", "model.vocab");
        if (vocab.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFileException(path, $"expected an object of token -> id, found a JSON {vocab.ValueKind}.", "model.vocab");
        }

        foreach (var entry in vocab.EnumerateObject())
        {
            Define(Text(path, () => entry.Name, "model.vocab"), entry.Value, GgufTokenType.Normal, "model.vocab");
        }

        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind != JsonValueKind.Null)
        {
            if (added.ValueKind != JsonValueKind.Array)
            {
                throw new ModelFileException(path, $"expected a list of tokens, found a JSON {added.ValueKind}.", "added_tokens");
            }

            int index = 0;
            foreach (var token in added.EnumerateArray())
            {
                string key = $"added_tokens[{index++}]";
                if (token.ValueKind != JsonValueKind.Object)
                {
                    throw new ModelFileException(path, $"expected an object with content and id, found a JSON {token.ValueKind}.", key);
                }

                if (!token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                {
                    throw new ModelFileException(path, "'content' is missing or not a string.", key);
                }

                if (!token.TryGetProperty("id", out var id))
                {
                    throw new ModelFileException(path, "'id' is missing.", key);
                }

                bool special = token.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                Define(Text(path, content.GetString, key), id, special ? GgufTokenType.Control : GgufTokenType.Normal, key);
            }
        }

        for (int id = 0; id < rowCount; id++)
        {
            if (tokens[id] is null)
            {
                // A placeholder no tokenizer text can collide with: "[PADn]" unless the vocabulary already has that text.
                string placeholder = $"[PAD{id}]";
                while (ids.ContainsKey(placeholder))
                {
                    placeholder = "[" + placeholder + "]";
                }

                tokens[id] = placeholder;
                types[id] = GgufTokenType.Unused;
            }
        }

        var mergesElement = RequireProperty(path, model, "merges", "model.merges");
        if (mergesElement.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFileException(path, $"expected a list of merges, found a JSON {mergesElement.ValueKind}.", "model.merges");
        }

        var merges = new string[mergesElement.GetArrayLength()];
        int at = 0;
        foreach (var merge in mergesElement.EnumerateArray())
        {
            merges[at] = Merge(path, merge, at);
            at++;
        }

        return new HfTokenizer(tokens!, types, merges, defined);
    }

    // "left right" (tokenizers < 0.20) or ["left", "right"] (>= 0.20): two non-empty parts without spaces, as llama.cpp splits them.
    private static string Merge(string path, JsonElement merge, int index)
    {
        string key = $"model.merges[{index}]";
        string[] parts = merge.ValueKind switch
        {
            JsonValueKind.String => Text(path, merge.GetString, key).Split(' '),
            JsonValueKind.Array => [.. merge.EnumerateArray().Select(part => part.ValueKind == JsonValueKind.String ? Text(path, part.GetString, key) : throw new ModelFileException(path, $"a merge part is a JSON {part.ValueKind}, not a string.", key))],
            _ => throw new ModelFileException(path, $"a merge is a JSON {merge.ValueKind}, not a pair of tokens.", key),
        };
        if (parts.Length != 2 || parts.Any(part => part.Length == 0 || part.Contains(' ', StringComparison.Ordinal) || !IsWellFormed(part)))
        {
            throw new ModelFileException(path, $"{merge.GetRawText()} is not a pair of two tokens.", key);
        }

        return $"{parts[0]} {parts[1]}";
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // System.Text.Json refuses to hand out a string holding a lone surrogate (an escape like \ud800): name the entry instead.
    private static string Text(string path, Func<string?> read, string key)
    {
        try
        {
            return read() ?? "";
        }
        catch (InvalidOperationException e)
        {
            throw new ModelFileException(path, $"a string that is not well-formed Unicode: {e.Message}", key, e);
        }
    }

    private static bool IsWellFormed(string text)
    {
        try
        {
            _ = StrictUtf8.GetByteCount(text);
            return true;
        }
        catch (System.Text.EncoderFallbackException)
        {
            return false;
        }
    }

    private static JsonElement RequireProperty(string path, JsonElement parent, string name, string key) =>
        parent.TryGetProperty(name, out var value) ? value : throw new ModelFileException(path, "missing.", key);
}
