namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>The files of a converted Mini-Omni model directory.</summary>
public sealed record ModelDirectory(string Path)
{
    /// <summary>The backbone file name: a llama.cpp <c>qwen2</c> GGUF.</summary>
    public const string BackboneFileName = "backbone.gguf";

    /// <summary>The audio file name: Whisper encoder, adapter and SNAC decoder in MiniOmni.SK's own GGUF.</summary>
    public const string AudioFileName = "audio.gguf";

    /// <summary>The backbone GGUF path.</summary>
    public string BackbonePath => System.IO.Path.Combine(Path, BackboneFileName);

    /// <summary>The audio GGUF path.</summary>
    public string AudioPath => System.IO.Path.Combine(Path, AudioFileName);

    /// <summary>Checks that both files exist, with an error naming the one missing.</summary>
    public ModelDirectory EnsureComplete()
    {
        if (!Directory.Exists(Path))
        {
            throw new ModelFileException(Path, "model directory not found.");
        }

        foreach (string file in new[] { BackbonePath, AudioPath })
        {
            if (!File.Exists(file))
            {
                throw new ModelFileException(file, "missing; convert the model with `miniomni convert` or create one with `miniomni synth`.");
            }
        }

        return this;
    }
}
