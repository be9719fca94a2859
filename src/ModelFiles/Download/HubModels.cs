namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>Files wanted from one Hugging Face model repository at one revision.</summary>
internal sealed record HubSource(string Repository, string Revision, IReadOnlyList<string> Files)
{
    /// <summary>The folder under the cache's <c>hub</c> directory: <c>owner--name/revision</c>, as huggingface_hub spells repositories.</summary>
    public string CacheFolder(string hubRoot) =>
        Path.Combine(hubRoot, Repository.Replace("/", "--", StringComparison.Ordinal), ModelStore.SafeFolderName(Revision));
}

/// <summary>The three releases a model is converted from.</summary>
internal sealed record HubModel(string Name, HubSource Checkpoint, HubSource Whisper, HubSource Snac)
{
    public IEnumerable<HubSource> Sources => [Checkpoint, Whisper, Snac];
}

/// <summary>The models <see cref="ModelStore"/> knows by name.</summary>
internal static class HubModels
{
    /// <summary>
    /// Mini-Omni as released. Whisper comes as the Hugging Face <c>openai/whisper-small</c> safetensors because the
    /// hub serves that (openai's <c>small.pt</c> lives on openai's own CDN); it holds the same weights.
    /// </summary>
    public static HubModel MiniOmni(string revision) => new(
        ModelStore.DefaultModelName,
        new HubSource("gpt-omni/mini-omni", revision, ["lit_model.pth", "model_config.yaml", "tokenizer.json", "tokenizer_config.json"]),
        new HubSource("openai/whisper-small", "main", ["config.json", "model.safetensors"]),
        new HubSource("hubertsiuzdak/snac_24khz", "main", ["config.json", "pytorch_model.bin"]));

    public static IReadOnlyList<string> Names { get; } = [ModelStore.DefaultModelName];

    /// <summary>The model called <paramref name="name"/>; an unknown name is an error listing the known ones.</summary>
    public static HubModel Get(string name, string revision) => name.ToLowerInvariant() switch
    {
        ModelStore.DefaultModelName => MiniOmni(revision),
        _ => throw new ArgumentException($"Unknown model '{name}'; choose one of {string.Join(", ", Names)}, or convert local files with `miniomni convert`.", nameof(name)),
    };
}
