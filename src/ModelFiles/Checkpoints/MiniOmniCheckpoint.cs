namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>A Mini-Omni release directory: <c>lit_model.pth</c>, <c>model_config.yaml</c>, <c>tokenizer.json</c>.</summary>
public sealed class MiniOmniCheckpoint : IDisposable
{
    private MiniOmniCheckpoint(string directory, LitGptConfig config, ITensorCheckpoint weights)
    {
        Directory = directory;
        Config = config;
        Weights = weights;
    }

    /// <summary>The directory.</summary>
    public string Directory { get; }

    /// <summary>The parsed <c>model_config.yaml</c>.</summary>
    public LitGptConfig Config { get; }

    /// <summary>Path of <c>model_config.yaml</c>, for error messages.</summary>
    public string ConfigPath => Path.Combine(Directory, "model_config.yaml");

    /// <summary>Path of the Hugging Face <c>tokenizer.json</c>.</summary>
    public string TokenizerPath => Path.Combine(Directory, "tokenizer.json");

    /// <summary>The litgpt state dict.</summary>
    public ITensorCheckpoint Weights { get; }

    /// <summary>Opens <paramref name="directory"/>, checking it is a Mini-Omni checkpoint.</summary>
    public static MiniOmniCheckpoint Open(string directory)
    {
        RequireDirectory(directory, "Mini-Omni checkpoint");
        foreach (string file in new[] { "lit_model.pth", "model_config.yaml", "tokenizer.json" })
        {
            if (!File.Exists(Path.Combine(directory, file)))
            {
                throw new ModelFileException(directory, $"no {file}; is this a Mini-Omni checkpoint directory (gpt-omni/mini-omni: lit_model.pth, model_config.yaml, tokenizer.json)?", file);
            }
        }

        var config = LitGptConfig.Load(Path.Combine(directory, "model_config.yaml"));
        return new MiniOmniCheckpoint(directory, config, TorchCheckpoint.Open(Path.Combine(directory, "lit_model.pth")));
    }

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();

    internal static void RequireDirectory(string directory, string what)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            throw new ModelFileException(directory, $"{what} directory not found.");
        }
    }
}
