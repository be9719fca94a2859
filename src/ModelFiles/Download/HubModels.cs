namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>Files wanted from one Hugging Face model repository at one revision.</summary>
/// <param name="Repository">The repository, <c>owner/name</c>.</param>
/// <param name="Revision">A branch, tag or commit.</param>
/// <param name="Files">What conversion reads: a revision without one of them is an error.</param>
/// <param name="OptionalFiles">Fetched when the revision has them, skipped when it has not.</param>
internal sealed record HubSource(string Repository, string Revision, IReadOnlyList<string> Files, IReadOnlyList<string> OptionalFiles)
{
    public HubSource(string repository, string revision, IReadOnlyList<string> files)
        : this(repository, revision, files, [])
    {
    }
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
    /// Only what conversion reads is required; <c>tokenizer_config.json</c> (which the reference reads if present,
    /// and conversion does not) comes along when the revision has it.
    /// </summary>
    public static HubModel MiniOmni(string revision) => new(
        ModelStore.DefaultModelName,
        new HubSource("gpt-omni/mini-omni", revision, ["lit_model.pth", "model_config.yaml", "tokenizer.json"], ["tokenizer_config.json"]),
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
