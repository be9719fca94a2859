using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>What a checked model directory holds: the backbone's hyper-parameters, the vocabulary's rows and the audio file's description.</summary>
public sealed record CheckedModelDirectory(ModelDirectory Directory, Qwen2Hyperparameters Backbone, int VocabularyRows, CheckedAudioFile Audio);

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

    /// <summary>
    /// Checks all three files, each on its own (<see cref="Qwen2GgufChecks"/>, <see cref="AudioGgufChecks"/>) and against
    /// each other (one width, one row count, one architecture), before any of them is handed to llama.cpp or ggml: a
    /// bad or mismatched file is a <see cref="ModelFileException"/> naming it and the key or tensor, never a native abort.
    /// </summary>
    public CheckedModelDirectory Check()
    {
        EnsureComplete();
        Qwen2Hyperparameters backbone;
        using (var file = GgufFile.Open(BackbonePath))
        {
            if (!file.Metadata.ContainsKey(MiniOmniGgufKeys.HeadlessBackbone))
            {
                throw new ModelFileException(BackbonePath, "this backbone was converted by an earlier version of MiniOmni.SK, with the output head inside (it has no '{MiniOmniGgufKeys.HeadlessBackbone}'); convert the model again (`miniomni convert`).", MiniOmniGgufKeys.HeadlessBackbone);
            }

            backbone = Qwen2GgufChecks.CheckBackbone(file);
        }

        Qwen2Hyperparameters vocabulary;
        int rows;
        using (var file = GgufFile.Open(VocabularyPath))
        {
            (vocabulary, rows) = Qwen2GgufChecks.CheckVocabulary(file);
        }

        CheckedAudioFile audio;
        using (var file = GgufFile.Open(AudioPath))
        {
            audio = AudioGgufChecks.Check(file);
        }

        if (vocabulary != backbone)
        {
            throw new ModelFileException(VocabularyPath, $"its hyper-parameters {vocabulary} are not the backbone's {backbone}: the files come from different models.", "qwen2");
        }

        if (audio.Description.EmbeddingLength != backbone.EmbeddingLength)
        {
            throw new ModelFileException(AudioPath, $"the adapter produces embeddings of {audio.Description.EmbeddingLength}; the backbone is {backbone.EmbeddingLength} wide: the files come from different models.", MiniOmniGgufKeys.EmbeddingLength);
        }

        if (audio.Description.PaddedVocabularySize != rows)
        {
            throw new ModelFileException(AudioPath, $"{audio.Description.PaddedVocabularySize} rows; the vocabulary file has {rows}: the files come from different models.", MiniOmniGgufKeys.PaddedVocabularySize);
        }

        return new CheckedModelDirectory(this, backbone, rows, audio);
    }
}
