using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// Models by name, ready to load: downloads the original releases from the Hugging Face hub (what is missing only),
/// converts them with <see cref="ModelConverter"/>, and keeps both in a cache directory.
/// </summary>
/// <remarks>
/// Cache layout: <c>hub/{owner}--{name}/{revision}/{file}</c> for the downloads (a <c>.partial</c> beside a file
/// is an interrupted download, resumed by the next run) and <c>models/{model}/{revision}/{type}/</c> for the
/// converted model directory, which appears only when complete. One process at a time works in a cache.
/// </remarks>
public static partial class ModelStore
{
    /// <summary>The released Mini-Omni.</summary>
    public const string DefaultModelName = "mini-omni";

    /// <summary>The names <see cref="EnsureModelAsync"/> knows.</summary>
    public static IReadOnlyList<string> ModelNames => HubModels.Names;

    /// <summary>
    /// A model directory from <paramref name="pathOrName"/>: an existing directory as it is, or a model name
    /// (<see cref="ModelNames"/>) fetched and converted on first use through <see cref="EnsureModelAsync"/>.
    /// </summary>
    public static async Task<ModelDirectory> ResolveAsync(
        string pathOrName,
        ModelStoreOptions? options = null,
        IProgress<DownloadProgress>? downloadProgress = null,
        IProgress<ConversionProgress>? conversionProgress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pathOrName);
        if (Directory.Exists(pathOrName) || !ModelNames.Contains(pathOrName, StringComparer.OrdinalIgnoreCase))
        {
            return new ModelDirectory(pathOrName).EnsureComplete();
        }

        return await EnsureModelAsync(pathOrName, options, downloadProgress, conversionProgress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Where the converted model <paramref name="modelName"/> is kept, whether or not it is there yet.</summary>
    public static ModelDirectory GetModelDirectory(string modelName = DefaultModelName, ModelStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelName);
        var settings = (options ?? new ModelStoreOptions()).Resolve();
        return new ModelDirectory(ModelPath(settings, HubModels.Get(modelName, settings.Revision)));
    }

    /// <summary>
    /// The converted model <paramref name="modelName"/> from the cache; if it is not there, downloads what is missing
    /// of its releases and converts them first. Errors (network, hub, corrupt download, offline with the model
    /// missing) are <see cref="ModelFileException"/>s that say what failed and what to do instead.
    /// </summary>
    public static async Task<ModelDirectory> EnsureModelAsync(
        string modelName = DefaultModelName,
        ModelStoreOptions? options = null,
        IProgress<DownloadProgress>? downloadProgress = null,
        IProgress<ConversionProgress>? conversionProgress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelName);
        options ??= new ModelStoreOptions();
        var settings = options.Resolve();
        var model = HubModels.Get(modelName, settings.Revision);
        var logger = settings.Logger;
        string target = ModelPath(settings, model);
        if (IsComplete(target))
        {
            logger.LogDebug("{Model} ({Type}) is in the cache at {Directory}.", model.Name, settings.FileType.ToName(), target);
            return new ModelDirectory(target);
        }

        using (await CacheLock.AcquireAsync(settings.CacheDirectory, logger, cancellationToken).ConfigureAwait(false))
        {
            // Another process may have finished it while this one waited.
            if (IsComplete(target))
            {
                return new ModelDirectory(target);
            }

            string hubRoot = Path.Combine(settings.CacheDirectory, "hub");
            var missing = model.Sources
                .SelectMany(source => source.Files.Select(file => (Source: source, File: file, Destination: Path.Combine(source.CacheFolder(hubRoot), file))))
                .Where(wanted => !File.Exists(wanted.Destination))
                .ToList();
            if (missing.Count > 0)
            {
                if (settings.Offline)
                {
                    throw new ModelFileException(target,
                        $"{model.Name} ({settings.FileType.ToName()}) is not in the cache, and offline mode (HF_HUB_OFFLINE or --offline) forbids downloading "
                        + $"{Describe(missing.Select(m => $"{m.Source.Repository}/{m.File}").ToList())}. Pull it once online (`miniomni pull`). {HubClient.LocalFilesAdvice}");
                }

                await DownloadAsync(new HubClient(settings, options.HttpClient), missing, downloadProgress, logger, cancellationToken).ConfigureAwait(false);
            }

            await Task.Run(() => Convert(model, hubRoot, target, settings, conversionProgress, cancellationToken), cancellationToken).ConfigureAwait(false);
            return new ModelDirectory(target).EnsureComplete();
        }
    }

    /// <summary>A revision as one safe folder name (<c>refs/pr/1</c> becomes <c>refs_pr_1</c>).</summary>
    internal static string SafeFolderName(string revision)
    {
        string safe = UnsafeFolderCharacters().Replace(revision, "_");
        return safe is "." or ".." ? safe.Replace('.', '_') : safe;
    }

    private static string ModelPath(ResolvedStoreOptions settings, HubModel model) =>
        Path.Combine(settings.CacheDirectory, "models", model.Name, SafeFolderName(model.Checkpoint.Revision), settings.FileType.ToName());

    private static string Describe(List<string> files) =>
        files.Count == 1 ? files[0] : $"{files.Count} files ({files[0]} and {files.Count - 1} more)";

    // A folder converted by an earlier version lacks the vocabulary file, so it is converted again.
    private static bool IsComplete(string directory) => new ModelDirectory(directory).IsComplete;

    private static async Task DownloadAsync(
        HubClient client,
        List<(HubSource Source, string File, string Destination)> missing,
        IProgress<DownloadProgress>? progress,
        ILogger logger,
        CancellationToken cancellationToken)
    {
        // Everything is listed first: a missing file or a refused repository fails before any byte is fetched,
        // and the overall total is known from the start.
        var plan = new List<(HubSource Source, HubFile File, string Destination)>();
        foreach (var group in missing.GroupBy(m => m.Source))
        {
            var listed = await client.ListAsync(group.Key, cancellationToken).ConfigureAwait(false);
            foreach (var (source, file, destination) in group)
            {
                plan.Add(listed.TryGetValue(file, out var hubFile)
                    ? (source, hubFile, destination)
                    : throw new ModelFileException(client.TreeUri(source).ToString(),
                        $"{source.Repository} at revision '{source.Revision}' has no {file}; check --revision. {HubClient.LocalFilesAdvice}", file));
            }
        }

        long total = plan.Sum(p => p.File.Size);
        var done = new long[plan.Count];
        logger.LogInformation("Downloading {Count} files ({Bytes} bytes).", plan.Count, total);
        for (int i = 0; i < plan.Count; i++)
        {
            var (source, file, destination) = plan[i];
            int index = i;
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            await client.DownloadAsync(source, file, destination, bytes =>
            {
                done[index] = bytes;
                progress?.Report(new DownloadProgress(source.Repository, file.Path, bytes, file.Size, done.Sum(), total));
            }, cancellationToken).ConfigureAwait(false);
        }
    }

    private static void Convert(HubModel model, string hubRoot, string target, ResolvedStoreOptions settings, IProgress<ConversionProgress>? progress, CancellationToken cancellationToken)
    {
        var sources = new ConversionSources(model.Checkpoint.CacheFolder(hubRoot), model.Whisper.CacheFolder(hubRoot), model.Snac.CacheFolder(hubRoot));
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string typeName = Path.GetFileName(target);

        // Leftovers of runs that were killed mid-conversion; the lock says none is running now.
        foreach (string stale in Directory.EnumerateDirectories(parent, $".{typeName}.partial-*"))
        {
            Directory.Delete(stale, recursive: true);
        }

        // Converted beside the target and moved in whole, so the target directory exists only when complete.
        string staging = Path.Combine(parent, $".{typeName}.partial-{Guid.NewGuid():N}");
        try
        {
            settings.Logger.LogInformation("Converting {Model} to {Type} in {Directory}.", model.Name, settings.FileType.ToName(), target);
            ModelConverter.Convert(sources, staging, settings.FileType, progress, settings.Logger, cancellationToken);
            if (Directory.Exists(target))
            {
                Directory.Delete(target, recursive: true);
            }

            Directory.Move(staging, target);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    [GeneratedRegex("[^A-Za-z0-9._-]")]
    private static partial Regex UnsafeFolderCharacters();
}
