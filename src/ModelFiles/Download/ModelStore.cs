using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// Models by name, ready to load: downloads the original releases from the Hugging Face hub (what is missing only),
/// converts them with <see cref="ModelConverter"/>, and keeps both in a cache directory.
/// </summary>
/// <remarks>
/// Cache layout: <c>hub/models--{owner}--{name}/</c> for each repository, as huggingface_hub lays out its cache
/// (<c>refs/{revision}</c> naming a commit, <c>snapshots/{commit}/{file}</c> linking to <c>blobs/{hash}</c>,
/// <c>blobs/{hash}.incomplete</c> for an interrupted download, resumed by the next run; <c>trees/{commit}.json</c> the
/// kept listing), and <c>models/{model}/{commit}/{type}/</c> for the model converted from that commit, which appears
/// only when complete and records its sources in <c>sources.json</c>. One process at a time writes in a cache.
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

    /// <summary>
    /// The converted model <paramref name="modelName"/> the cache holds for the revision as last pulled (the commits its
    /// refs name), without touching the network; null when the cache holds no complete one.
    /// </summary>
    public static ModelDirectory? FindCachedModel(string modelName = DefaultModelName, ModelStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelName);
        var settings = (options ?? new ModelStoreOptions()).Resolve() with { Offline = true };
        var model = HubModels.Get(modelName, settings.Revision);
        var snapshots = new HubSnapshots(settings, client: null);
        try
        {
            var pinned = model.Sources.Select(s => snapshots.PinAsync(s, CancellationToken.None).GetAwaiter().GetResult()).ToList();
            string target = ModelPath(settings, model, pinned[0].Commit);
            return IsCurrent(target, ConvertedFrom.Of(pinned, snapshots), settings.Logger, byContent: false) ? new ModelDirectory(target) : null;
        }
        catch (ModelFileException)
        {
            return null;
        }
    }

    /// <summary>
    /// The converted model <paramref name="modelName"/>, current with the hub: each repository's revision is resolved
    /// to its commit (one request each; offline, the cache's ref), what that commit lacks in the cache is downloaded,
    /// and the model converted from those commits is returned, converting it first if the cache does not hold it.
    /// Errors (network, hub, corrupt download, offline with the model missing) are <see cref="ModelFileException"/>s
    /// that say what failed and what to do instead.
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
        var snapshots = new HubSnapshots(settings, settings.Offline ? null : new HubClient(settings, options.HttpClient));

        // Network only, nothing written: the commits this pull is about.
        var pinned = new List<PinnedSource>();
        foreach (var source in model.Sources)
        {
            pinned.Add(await snapshots.PinAsync(source, cancellationToken).ConfigureAwait(false));
        }

        string target = ModelPath(settings, model, pinned[0].Commit);
        if (IsCurrent(target, ConvertedFrom.Of(pinned, snapshots), logger, byContent: false))
        {
            foreach (var source in pinned.Where(p => !p.FromCache))
            {
                source.Cache.WriteRef(source.Source.Revision, source.Commit);
            }

            logger.LogDebug("{Model} ({Type}) at commit {Commit} is in the cache at {Directory}.", model.Name, settings.FileType.ToName(), pinned[0].Commit[..12], target);
            return new ModelDirectory(target);
        }

        using (await CacheLock.AcquireAsync(settings.CacheDirectory, logger, cancellationToken).ConfigureAwait(false))
        {
            await snapshots.EnsureCompleteAsync(pinned, downloadProgress, cancellationToken).ConfigureAwait(false);

            // Decided after the snapshots are complete, when every listing is kept: another process may have converted
            // it while this one waited, or the sources may have moved to commits holding the same files.
            var wanted = ConvertedFrom.Of(pinned, snapshots);
            if (IsCurrent(target, wanted, logger, byContent: true))
            {
                wanted.Write(target);
                return new ModelDirectory(target);
            }

            await Task.Run(() => Convert(model, pinned, wanted, target, settings, conversionProgress, cancellationToken), cancellationToken).ConfigureAwait(false);
            NoteEarlierLayout(settings, model, snapshots);
            return new ModelDirectory(target).EnsureComplete();
        }
    }

    /// <summary>A revision as one safe folder name (<c>refs/pr/1</c> becomes <c>refs_pr_1</c>).</summary>
    internal static string SafeFolderName(string revision)
    {
        string safe = UnsafeFolderCharacters().Replace(revision, "_");
        return safe is "." or ".." ? safe.Replace('.', '_') : safe;
    }

    private static string ModelPath(ResolvedStoreOptions settings, HubModel model, string commit) =>
        Path.Combine(settings.CacheDirectory, "models", model.Name, commit, settings.FileType.ToName());

    /// <summary>
    /// Whether <paramref name="directory"/> holds a complete model converted from <paramref name="wanted"/>: the same
    /// commits, or (with <paramref name="byContent"/>) the same file contents. A directory without a record (the earlier
    /// layout, or an earlier version lacking the vocabulary file) is converted again.
    /// </summary>
    private static bool IsCurrent(string directory, ConvertedFrom wanted, ILogger logger, bool byContent) =>
        new ModelDirectory(directory).IsComplete
        && ConvertedFrom.Read(directory, logger) is { } record
        && (byContent ? record.SameContent(wanted) : record.SameCommits(wanted));

    private static void Convert(HubModel model, IReadOnlyList<PinnedSource> pinned, ConvertedFrom record, string target, ResolvedStoreOptions settings, IProgress<ConversionProgress>? progress, CancellationToken cancellationToken)
    {
        var sources = new ConversionSources(pinned[0].Folder, pinned[1].Folder, pinned[2].Folder);
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
            settings.Logger.LogInformation("Converting {Model} to {Type} from {Sources} in {Directory}.", model.Name, settings.FileType.ToName(),
                string.Join(", ", pinned.Select(p => p.Describe())), target);
            ModelConverter.Convert(sources, staging, settings.FileType, progress, settings.Logger, cancellationToken);
            record.Write(staging);
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

    /// <summary>Says which folders of the layout before commits were kept remain; they are not read, and not deleted (a model there may be in use as --model).</summary>
    private static void NoteEarlierLayout(ResolvedStoreOptions settings, HubModel model, HubSnapshots snapshots)
    {
        string models = Path.Combine(settings.CacheDirectory, "models", model.Name);
        var earlier = snapshots.LegacyFolders(model.Sources)
            .Concat(Directory.EnumerateDirectories(models).Where(d => !HubRepositoryCache.IsCommit(Path.GetFileName(d))))
            .ToList();
        if (earlier.Count > 0)
        {
            settings.Logger.LogInformation("The cache holds folders of an earlier layout that this version no longer reads: {Folders}. Delete them to free the space.",
                string.Join(", ", earlier));
        }
    }

    [GeneratedRegex("[^A-Za-z0-9._-]")]
    private static partial Regex UnsafeFolderCharacters();
}
