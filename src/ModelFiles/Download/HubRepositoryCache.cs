using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// One repository's part of the cache, laid out as huggingface_hub lays out its own cache:
/// <code>
/// hub/models--{owner}--{name}/
///   refs/{revision}              the commit a branch or tag pointed at when it was last pulled completely
///   trees/{commit}.json          the files the hub lists at that commit, with their sizes and hashes (huggingface_hub's format)
///   blobs/{hash}                 each file's checked content, named by its SHA-256 (LFS) or git blob id
///   blobs/{hash}.incomplete      a download in progress, resumed by the next run
///   snapshots/{commit}/{file}    links to the blobs: the files of one commit, never of two
/// </code>
/// A commit's files are immutable, so a snapshot never changes once complete, and a file two commits share is kept once.
/// </summary>
internal sealed partial class HubRepositoryCache
{
    private const int TreeFormatVersion = 1;

    /// <summary>Bounds on what is read from the cache's own small files: a ref holds 40 characters, a listing a few kilobytes.</summary>
    private const long MaxRefBytes = 1024, MaxTreeBytes = 32 << 20;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly ILogger _logger;
    private readonly bool _copyInsteadOfLinks;

    /// <param name="hubRoot">The cache's <c>hub</c> folder.</param>
    /// <param name="repository">The repository, <c>owner/name</c>.</param>
    /// <param name="logger">Told of links that could not be made.</param>
    /// <param name="copyInsteadOfLinks">Never make symbolic links (huggingface_hub's <c>HF_HUB_DISABLE_SYMLINKS</c>).</param>
    public HubRepositoryCache(string hubRoot, string repository, ILogger logger, bool copyInsteadOfLinks = false)
    {
        _copyInsteadOfLinks = copyInsteadOfLinks;
        Repository = repository;
        Root = Path.Combine(hubRoot, FolderName(repository));
        LegacyRoot = Path.Combine(hubRoot, repository.Replace("/", "--", StringComparison.Ordinal));
        _logger = logger;
    }

    /// <summary>The repository, <c>owner/name</c>.</summary>
    public string Repository { get; }

    /// <summary><c>hub/models--owner--name</c>.</summary>
    public string Root { get; }

    /// <summary>Where the earlier layout kept this repository's downloads: <c>hub/owner--name/{revision}/</c>.</summary>
    public string LegacyRoot { get; }

    /// <summary>The folder name huggingface_hub gives a model repository: <c>models--owner--name</c>.</summary>
    public static string FolderName(string repository) => "models--" + repository.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="revision"/> is a full commit id, which needs no resolving and no ref.</summary>
    public static bool IsCommit(string revision) => CommitId().IsMatch(revision);

    /// <summary>Whether <paramref name="hash"/> can name a blob: a git blob id (40 hex digits) or a SHA-256 (64).</summary>
    public static bool IsBlobHash(string hash) => BlobHash().IsMatch(hash);

    /// <summary>The ref file of a branch or tag; <c>refs/pr/1</c> nests as huggingface_hub nests it, each part made safe.</summary>
    public string RefPath(string revision) =>
        Path.Combine([Root, "refs", .. revision.Split('/').Select(ModelStore.SafeFolderName)]);

    public string SnapshotFolder(string commit) => Path.Combine(Root, "snapshots", RequireCommit(commit));

    public string SnapshotPath(string commit, string file) => Path.Combine(SnapshotFolder(commit), file);

    public string BlobPath(string hash) => Path.Combine(Root, "blobs", IsBlobHash(hash) ? hash : throw new ArgumentException($"'{hash}' is no blob hash.", nameof(hash)));

    public string IncompletePath(string hash) => BlobPath(hash) + ".incomplete";

    private string TreePath(string commit) => Path.Combine(Root, "trees", RequireCommit(commit) + ".json");

    /// <summary>The commit the ref of <paramref name="revision"/> names, or null when there is none (or it is not a commit id).</summary>
    public string? ReadRef(string revision)
    {
        string path = RefPath(revision);
        try
        {
            string? commit = !File.Exists(path) ? null : new FileInfo(path).Length > MaxRefBytes ? "" : File.ReadAllText(path).Trim();
            if (commit is not null && !IsCommit(commit))
            {
                _logger.LogWarning("The ref file {Path} does not hold a commit id; it is ignored.", path);
                return null;
            }

            return commit;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning("The ref file {Path} could not be read ({Reason}); it is ignored.", path, e.Message);
            return null;
        }
    }

    /// <summary>Points the ref of <paramref name="revision"/> at <paramref name="commit"/>, atomically and only if it changes.</summary>
    public void WriteRef(string revision, string commit)
    {
        if (IsCommit(revision) || ReadRef(revision) == commit)
        {
            return;
        }

        WriteAtomically(RefPath(revision), commit);
    }

    /// <summary>The listing of <paramref name="commit"/> kept by an earlier run, or null.</summary>
    public IReadOnlyDictionary<string, HubFile>? ReadTree(string commit)
    {
        string path = TreePath(commit);
        if (!File.Exists(path) || new FileInfo(path).Length > MaxTreeBytes)
        {
            return null;
        }

        try
        {
            using var stream = File.OpenRead(path);
            var tree = JsonSerializer.Deserialize<TreeFile>(stream, Json);
            if (tree?.FormatVersion != TreeFormatVersion || tree.Files is null)
            {
                return null;
            }

            var files = new Dictionary<string, HubFile>(StringComparer.Ordinal);
            foreach (var (name, entry) in tree.Files)
            {
                var file = new HubFile(name, entry.LfsSize ?? entry.Size, entry.LfsSha256, entry.BlobId);
                if (!file.IsValid)
                {
                    return null;
                }

                files[name] = file;
            }

            return files;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            _logger.LogWarning("The kept listing {Path} could not be read ({Reason}); the hub is asked again.", path, e.Message);
            return null;
        }
    }

    /// <summary>Keeps the listing of <paramref name="commit"/>: a commit never changes, so neither does its listing.</summary>
    public void WriteTree(string commit, IReadOnlyDictionary<string, HubFile> files)
    {
        var tree = new TreeFile(TreeFormatVersion, files.Values.OrderBy(f => f.Path, StringComparer.Ordinal)
            .ToDictionary(f => f.Path, f => new TreeEntry(f.Size, f.GitBlobId ?? "", f.Sha256, f.Sha256 is null ? null : f.Size), StringComparer.Ordinal));
        WriteAtomically(TreePath(commit), JsonSerializer.Serialize(tree, Json));
    }

    /// <summary>Whether the snapshot holds <paramref name="file"/> (a link whose blob is there, or a copy).</summary>
    public bool HasSnapshotFile(string commit, string file) => ExistsThroughLinks(SnapshotPath(commit, file));

    /// <summary>Whether the blob <paramref name="hash"/> is there (a link counts only when what it points at is).</summary>
    public bool HasBlob(string hash) => ExistsThroughLinks(BlobPath(hash));

    /// <summary>
    /// Makes <paramref name="external"/> (a checked file of huggingface_hub's own cache) the blob <paramref name="hash"/>:
    /// an absolute link to it, or a copy where links cannot be made. Should the file go, the blob is downloaded again.
    /// </summary>
    public void AdoptExternalBlob(string hash, string external)
    {
        string blob = BlobPath(hash);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        DeleteLink(blob);
        try
        {
            CreateLink(blob, Path.GetFullPath(external));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            _logger.LogDebug("No symbolic link for {Blob} ({Reason}); {External} is copied instead.", blob, e.Message, external);
            string incomplete = IncompletePath(hash);
            File.Copy(external, incomplete, overwrite: true);
            File.Move(incomplete, blob, overwrite: true);
        }
    }

    /// <summary>
    /// Puts the blob <paramref name="hash"/> into the snapshot as <paramref name="file"/>: a relative symbolic link, as
    /// huggingface_hub makes; where links cannot be made (Windows without developer mode) a fresh blob is moved there
    /// and a kept one copied.
    /// </summary>
    public void Link(string commit, string file, string hash, bool newBlob)
    {
        string link = SnapshotPath(commit, file);
        string blob = BlobPath(hash);
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        DeleteLink(link);

        try
        {
            CreateLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            _logger.LogDebug("No symbolic link for {Link} ({Reason}); the file is {How} instead.", link, e.Message, newBlob ? "moved" : "copied");
            if (newBlob)
            {
                File.Move(blob, link);
            }
            else
            {
                File.Copy(blob, link);
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="path"/> is there, following links to the end: File.Exists counts a link whose target is
    /// gone, and such a blob must be fetched again.
    /// </summary>
    private static bool ExistsThroughLinks(string path)
    {
        var info = new FileInfo(path);
        return info.LinkTarget is null ? info.Exists : info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    private void CreateLink(string path, string target)
    {
        if (_copyInsteadOfLinks)
        {
            throw new PlatformNotSupportedException("HF_HUB_DISABLE_SYMLINKS is set");
        }

        File.CreateSymbolicLink(path, target);
    }

    /// <summary>Removes a file or a link (dangling or not) at <paramref name="path"/>.</summary>
    private static void DeleteLink(string path)
    {
        if (File.Exists(path) || new FileInfo(path).LinkTarget is not null)
        {
            File.Delete(path);
        }
    }

    private static void WriteAtomically(string path, string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(temporary, content);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static string RequireCommit(string commit) =>
        IsCommit(commit) ? commit : throw new ArgumentException($"'{commit}' is not a commit id.", nameof(commit));

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitId();

    [GeneratedRegex("^(?:[0-9a-f]{40}|[0-9a-f]{64})$")]
    private static partial Regex BlobHash();

    // The shape huggingface_hub gives trees/{commit}.json, so either tool can read the other's.
    private sealed record TreeFile(
        [property: JsonPropertyName("format_version")] int FormatVersion,
        [property: JsonPropertyName("files")] Dictionary<string, TreeEntry>? Files);

    private sealed record TreeEntry(
        [property: JsonPropertyName("size")] long Size,
        [property: JsonPropertyName("blob_id")] string? BlobId,
        [property: JsonPropertyName("lfs_sha256"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? LfsSha256,
        [property: JsonPropertyName("lfs_size"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? LfsSize);
}
