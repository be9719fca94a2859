using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>A source pinned to one commit, and whether that commit came from the cache (offline, or the hub unreachable).</summary>
internal sealed record PinnedSource(HubSource Source, HubRepositoryCache Cache, string Commit, bool FromCache)
{
    /// <summary>The folder holding the source's files at its commit, as conversion reads them.</summary>
    public string Folder => Cache.SnapshotFolder(Commit);

    public string Describe() => $"{Source.Repository} at '{Source.Revision}' (commit {Commit[..12]})";
}

/// <summary>
/// Brings sources into the cache as huggingface_hub's <c>snapshot_download</c> does: the revision is resolved to a commit
/// once, everything is listed and fetched at that commit into its own snapshot, and the ref is moved only when the
/// snapshot is complete, so files of two commits never meet and an interrupted pull leaves the last complete one in use.
/// </summary>
internal sealed class HubSnapshots(ResolvedStoreOptions settings, HubClient? client)
{
    private readonly ILogger _logger = settings.Logger;

    /// <summary>Why the hub could not be reached, once it could not: later sources use their refs without asking.</summary>
    private ModelFileException? _unavailable;

    public string HubRoot { get; } = Path.Combine(settings.CacheDirectory, "hub");

    /// <summary>
    /// The commit <paramref name="source"/> is pulled at: its revision when that is a commit id; else offline the ref
    /// file alone; else the hub's answer (one request), or the ref when the hub cannot be reached and the cache holds
    /// that commit complete. Writes nothing.
    /// </summary>
    public async Task<PinnedSource> PinAsync(HubSource source, CancellationToken cancellationToken)
    {
        var cache = new HubRepositoryCache(HubRoot, source.Repository, _logger, settings.CopyInsteadOfLinks);
        if (HubRepositoryCache.IsCommit(source.Revision))
        {
            var byCommit = new PinnedSource(source, cache, source.Revision, FromCache: client is null);
            return client is null ? RequireComplete(byCommit, null) : byCommit;
        }

        if (client is null)
        {
            string commit = cache.ReadRef(source.Revision) ?? throw new ModelFileException(cache.RefPath(source.Revision),
                $"offline (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or --offline), and the cache holds no ref for {source.Repository} at '{source.Revision}': "
                + $"it was never pulled completely into {settings.CacheDirectory}. Pull it once online (`miniomni pull`). {HubClient.LocalFilesAdvice}");
            return RequireComplete(new PinnedSource(source, cache, commit, FromCache: true), null);
        }

        if (_unavailable is null)
        {
            try
            {
                string commit = await client.ResolveCommitAsync(source.Repository, source.Revision, cancellationToken).ConfigureAwait(false);
                string? known = cache.ReadRef(source.Revision);
                if (known is not null && known != commit)
                {
                    _logger.LogInformation("{Repository} '{Revision}' moved from commit {Old} to {New} since the last pull.", source.Repository, source.Revision, known[..12], commit[..12]);
                }
                else
                {
                    _logger.LogDebug("{Repository} '{Revision}' is commit {Commit}.", source.Repository, source.Revision, commit);
                }

                return new PinnedSource(source, cache, commit, FromCache: false);
            }
            catch (ModelFileException e) when (HubClient.IsUnavailable(e))
            {
                if (cache.ReadRef(source.Revision) is null)
                {
                    throw;
                }

                // The other repositories live on the same hub: they are not asked (and waited for) again.
                _unavailable = e;
            }
        }

        // As snapshot_download: a hub that cannot be reached (not one that refuses) leaves the cache's commit in use.
        string cached = cache.ReadRef(source.Revision) ?? throw new ModelFileException(cache.RefPath(source.Revision),
            $"the hub at {settings.Endpoint} could not be reached ({ShortReason(_unavailable)}), and the cache holds no ref for {source.Repository} at '{source.Revision}'. {HubClient.LocalFilesAdvice}",
            innerException: _unavailable);
        var pinned = RequireComplete(new PinnedSource(source, cache, cached, FromCache: true), _unavailable);
        _logger.LogWarning("Could not revalidate {Repository} '{Revision}' with the hub at {Endpoint} ({Reason}); using commit {Commit}, which the cache's ref names.",
            source.Repository, source.Revision, settings.Endpoint, ShortReason(_unavailable), cached[..12]);
        return pinned;
    }

    /// <summary>
    /// Makes the snapshot of every source complete: lists each commit (once; the listing is kept), links files whose
    /// blob the cache already holds, downloads the rest (all listed first, so a missing file fails before any byte is
    /// fetched), and then points each ref at its commit.
    /// </summary>
    public async Task EnsureCompleteAsync(IReadOnlyList<PinnedSource> pinned, IProgress<DownloadProgress>? progress, CancellationToken cancellationToken)
    {
        var downloads = new List<(PinnedSource Pinned, HubFile File)>();
        foreach (var source in pinned.Where(p => !p.FromCache))
        {
            var listing = await ListingAsync(source, cancellationToken).ConfigureAwait(false);
            foreach (var file in await WantedAsync(source, listing, cancellationToken).ConfigureAwait(false))
            {
                downloads.Add((source, file));
            }
        }

        if (downloads.Count > 0)
        {
            await DownloadAsync(downloads, progress, cancellationToken).ConfigureAwait(false);
        }

        foreach (var source in pinned.Where(p => !p.FromCache))
        {
            RequireComplete(source, null);
            source.Cache.WriteRef(source.Source.Revision, source.Commit);
        }
    }

    /// <summary>The files of <paramref name="source"/> conversion reads, as its commit's listing gives them; null when the listing is not kept.</summary>
    public IReadOnlyDictionary<string, HubFile>? KeptFiles(PinnedSource source) =>
        source.Cache.ReadTree(source.Commit) is { } tree
            ? source.Source.Files.Where(tree.ContainsKey).ToDictionary(f => f, f => tree[f], StringComparer.Ordinal)
            : null;

    /// <summary>Folders of the layout before commits were kept, which this version no longer reads.</summary>
    public IEnumerable<string> LegacyFolders(IEnumerable<HubSource> sources) =>
        sources.Select(s => new HubRepositoryCache(HubRoot, s.Repository, _logger).LegacyRoot).Where(Directory.Exists);

    private async Task<IReadOnlyDictionary<string, HubFile>> ListingAsync(PinnedSource source, CancellationToken cancellationToken)
    {
        if (source.Cache.ReadTree(source.Commit) is { } kept)
        {
            return kept;
        }

        var listing = await client!.ListAsync(source.Source.Repository, source.Commit, cancellationToken).ConfigureAwait(false);
        source.Cache.WriteTree(source.Commit, listing);
        return listing;
    }

    /// <summary>The files still to download for <paramref name="source"/>; links what the cache already holds on the way.</summary>
    private async Task<List<HubFile>> WantedAsync(PinnedSource source, IReadOnlyDictionary<string, HubFile> listing, CancellationToken cancellationToken)
    {
        var missing = source.Source.Files.Where(f => !listing.ContainsKey(f)).ToList();
        if (missing.Count > 0)
        {
            throw new ModelFileException(client!.TreeUri(source.Source.Repository, source.Commit).ToString(),
                $"{source.Describe()} has no {string.Join(", ", missing)}; check --revision. {HubClient.LocalFilesAdvice}", missing[0]);
        }

        foreach (string skipped in source.Source.OptionalFiles.Where(f => !listing.ContainsKey(f)))
        {
            _logger.LogDebug("{Source} has no {File}; it is optional and skipped.", source.Describe(), skipped);
        }

        var toDownload = new List<HubFile>();
        foreach (var file in source.Source.Files.Concat(source.Source.OptionalFiles).Where(listing.ContainsKey).Select(f => listing[f]))
        {
            if (source.Cache.HasSnapshotFile(source.Commit, file.Path))
            {
                continue;
            }

            if (source.Cache.HasBlob(file.BlobHash)
                || await AdoptLegacyFileAsync(source, file, cancellationToken).ConfigureAwait(false)
                || await AdoptHuggingFaceBlobAsync(source, file, cancellationToken).ConfigureAwait(false))
            {
                // Another commit's file with the same content, the earlier layout's copy, or huggingface_hub's: no download.
                source.Cache.Link(source.Commit, file.Path, file.BlobHash, newBlob: false);
                continue;
            }

            toDownload.Add(file);
        }

        return toDownload;
    }

    /// <summary>
    /// Moves the earlier layout's download of <paramref name="file"/> (<c>hub/owner--name/{revision}/{file}</c>) into the
    /// blobs when it has the size and hash the hub lists now; anything else there is left alone.
    /// </summary>
    private async Task<bool> AdoptLegacyFileAsync(PinnedSource source, HubFile file, CancellationToken cancellationToken)
    {
        string legacy = Path.Combine(source.Cache.LegacyRoot, ModelStore.SafeFolderName(source.Source.Revision), file.Path);
        if (!File.Exists(legacy) || new FileInfo(legacy).Length != file.Size
            || await HubClient.CheckAsync(legacy, file, cancellationToken).ConfigureAwait(false) is not null)
        {
            return false;
        }

        string blob = source.Cache.BlobPath(file.BlobHash);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.Move(legacy, blob, overwrite: true);
        _logger.LogInformation("Moved {Legacy} of the cache's earlier layout into {Blob}: it matches {Repository}/{File} at commit {Commit}.",
            legacy, blob, source.Source.Repository, file.Path, source.Commit[..12]);
        DeleteIfEmpty(Path.GetDirectoryName(legacy)!);
        DeleteIfEmpty(source.Cache.LegacyRoot);
        return true;
    }

    /// <summary>
    /// Uses the blob huggingface_hub's own cache (<c>HF_HUB_CACHE</c>) holds for <paramref name="file"/>, when it has
    /// the size and hash the hub lists: a model fetched once with huggingface_hub is not fetched again.
    /// </summary>
    private async Task<bool> AdoptHuggingFaceBlobAsync(PinnedSource source, HubFile file, CancellationToken cancellationToken)
    {
        string theirs = Path.Combine(settings.HuggingFaceHubCache, HubRepositoryCache.FolderName(source.Source.Repository), "blobs", file.BlobHash);
        if (string.Equals(Path.GetFullPath(theirs), Path.GetFullPath(source.Cache.BlobPath(file.BlobHash)), StringComparison.Ordinal)
            || !File.Exists(theirs) || new FileInfo(theirs).Length != file.Size
            || await HubClient.CheckAsync(theirs, file, cancellationToken).ConfigureAwait(false) is not null)
        {
            return false;
        }

        source.Cache.AdoptExternalBlob(file.BlobHash, theirs);
        _logger.LogInformation("Using {Repository}/{File} from huggingface_hub's cache ({Path}); it matches the hub's hash.", source.Source.Repository, file.Path, theirs);
        return true;
    }

    private async Task DownloadAsync(List<(PinnedSource Pinned, HubFile File)> downloads, IProgress<DownloadProgress>? progress, CancellationToken cancellationToken)
    {
        long total = downloads.Sum(d => d.File.Size);
        var done = new long[downloads.Count];
        _logger.LogInformation("Downloading {Count} files ({Bytes} bytes).", downloads.Count, total);
        WarnIfTheDiskIsShort(downloads.Sum(d => d.File.Size - Math.Min(d.File.Size, Length(d.Pinned.Cache.IncompletePath(d.File.BlobHash)))));
        for (int i = 0; i < downloads.Count; i++)
        {
            var (source, file) = downloads[i];
            string repository = source.Source.Repository;
            int index = i;
            string blob = source.Cache.BlobPath(file.BlobHash);
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);

            // Two wanted files with one content share one blob: the second finds it there.
            if (!source.Cache.HasBlob(file.BlobHash))
            {
                await client!.DownloadAsync(repository, source.Commit, file, blob, bytes =>
                {
                    done[index] = bytes;
                    progress?.Report(new DownloadProgress(repository, file.Path, bytes, file.Size, done.Sum(), total));
                }, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                done[index] = file.Size;
                progress?.Report(new DownloadProgress(repository, file.Path, file.Size, file.Size, done.Sum(), total));
            }

            // Where links cannot be made, a blob no other file of this pull wants is moved, not copied.
            bool soleUser = downloads.Count(d => d.Pinned.Cache.Root == source.Cache.Root && d.File.BlobHash == file.BlobHash) == 1;
            source.Cache.Link(source.Commit, file.Path, file.BlobHash, newBlob: soleUser);
        }
    }

    /// <summary>The pinned source when its snapshot holds every file conversion reads; else an error naming the missing ones.</summary>
    private PinnedSource RequireComplete(PinnedSource pinned, Exception? hubError)
    {
        var missing = pinned.Source.Files.Where(f => !pinned.Cache.HasSnapshotFile(pinned.Commit, f)).ToList();
        if (missing.Count == 0)
        {
            return pinned;
        }

        string why = hubError is ModelFileException hub ? $"the hub at {settings.Endpoint} could not be reached ({ShortReason(hub)})" : client is null ? "offline (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or --offline)" : "after the download";
        throw new ModelFileException(pinned.Folder,
            $"{why}, and the cache holds {pinned.Describe()} without {string.Join(", ", missing)}. Pull it once online (`miniomni pull`) to complete it. {HubClient.LocalFilesAdvice}",
            missing[0], hubError);
    }

    /// <summary>As huggingface_hub: a warning before the download when the disk has less room than it needs (the download then fails where it stops, and resumes there).</summary>
    private void WarnIfTheDiskIsShort(long needed)
    {
        try
        {
            long free = new DriveInfo(settings.CacheDirectory).AvailableFreeSpace;
            if (free < needed)
            {
                _logger.LogWarning("The download needs {Needed} bytes but {Directory} has {Free} free; it will stop when the disk is full (and resume where it stopped once there is room).",
                    needed, settings.CacheDirectory, free);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            _logger.LogDebug("The free space of {Directory} is unknown ({Reason}).", settings.CacheDirectory, e.Message);
        }
    }

    private static long Length(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    /// <summary>The cause alone (the status or the socket error), without the advice the full message ends with.</summary>
    private static string ShortReason(ModelFileException e) => e.InnerException?.Message ?? e.Message;

    private static void DeleteIfEmpty(string directory)
    {
        if (Directory.Exists(directory) && !Directory.EnumerateFileSystemEntries(directory).Any())
        {
            Directory.Delete(directory);
        }
    }
}
