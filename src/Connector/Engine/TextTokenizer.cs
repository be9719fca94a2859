using LLama;
using LLama.Common;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Engine;

/// <summary>
/// Qwen2's tokenizer as llama.cpp implements it, loaded vocabulary-only from the vocabulary file (the backbone file
/// carries no tokenizer). Thread-safe: llama.cpp's tokenizer keeps no state between calls.
/// </summary>
internal sealed class TextTokenizer : IDisposable
{
    private readonly LLamaWeights _vocabulary;

    private TextTokenizer(LLamaWeights vocabulary) => _vocabulary = vocabulary;

    /// <summary>Loads the tokenizer of <paramref name="vocabularyPath"/>.</summary>
    public static TextTokenizer Load(string vocabularyPath)
    {
        if (!File.Exists(vocabularyPath))
        {
            throw new ModelFileException(vocabularyPath, "file not found.");
        }

        // llama.cpp asserts on some inconsistent vocabularies (two tokens of one text) instead of failing the load.
        using (var file = GgufFile.Open(vocabularyPath))
        {
            Qwen2GgufChecks.CheckVocabulary(file);
        }

        try
        {
            return new TextTokenizer(LLamaWeights.LoadFromFile(new ModelParams(vocabularyPath) { VocabOnly = true, GpuLayerCount = 0 }));
        }
        catch (Exception e) when (e is LLama.Exceptions.LoadWeightsFailedException or LLama.Exceptions.RuntimeError)
        {
            throw new ModelFileException(vocabularyPath, $"llama.cpp could not load the tokenizer: {e.Message}", innerException: e);
        }
    }

    /// <summary>Tokenizes text as the release does: no BOS; special tokens (e.g. ChatML's markers) only when <paramref name="special"/>.</summary>
    public int[] Tokenize(string text, bool special = false) => [.. _vocabulary.Tokenize(text, add_bos: false, special, System.Text.Encoding.UTF8).Select(t => (int)t)];

    /// <summary>A detokenizer that only returns whole UTF-8 characters, for streaming text.</summary>
    public StreamingTokenDecoder CreateTextDecoder() => new(System.Text.Encoding.UTF8, _vocabulary) { DecodeSpecialTokens = false };

    /// <inheritdoc />
    public void Dispose() => _vocabulary.Dispose();
}
