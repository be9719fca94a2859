namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>The files of a converted Mini-Omni model directory.</summary>
public sealed record ModelDirectory(string Path)
{
    /// <summary>The backbone file name: a llama.cpp <c>qwen2</c> GGUF of the transformer blocks, without the output head.</summary>
    public const string BackboneFileName = "backbone.gguf";

    /// <summary>The vocabulary file name: the tokenizer, token embedding table and output head, as a <c>qwen2</c> GGUF llama.cpp loads vocabulary-only.</summary>
    public const string VocabularyFileName = "vocabulary.gguf";

    /// <summary>The audio file name: Whisper encoder, adapter and SNAC decoder in MiniOmni.SK's own GGUF.</summary>
    public const string AudioFileName = "audio.gguf";

    /// <summary>The backbone GGUF path.</summary>
    public string BackbonePath => System.IO.Path.Combine(Path, BackboneFileName);

    /// <summary>The vocabulary GGUF path.</summary>
    public string VocabularyPath => System.IO.Path.Combine(Path, VocabularyFileName);

    /// <summary>The audio GGUF path.</summary>
    public string AudioPath => System.IO.Path.Combine(Path, AudioFileName);

    /// <summary>The three files, in the order they are written.</summary>
    public IReadOnlyList<string> FilePaths => [AudioPath, VocabularyPath, BackbonePath];

    /// <summary>Whether every file is there.</summary>
    public bool IsComplete => FilePaths.All(File.Exists);

    /// <summary>Checks that every file exists, with an error naming the one missing.</summary>
    public ModelDirectory EnsureComplete()
    {
        if (!Directory.Exists(Path))
        {
            throw new ModelFileException(Path, "model directory not found.");
        }

        foreach (string file in FilePaths)
        {
            if (!File.Exists(file))
            {
                throw new ModelFileException(file, "missing; convert the model with `miniomni convert` or create one with `miniomni synth`.");
            }
        }

        return this;
    }
}
