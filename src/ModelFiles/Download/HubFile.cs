namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>A file as the hub lists it at one commit: its size, and the hash it is checked against and kept under.</summary>
/// <param name="Path">The file's path in the repository.</param>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Sha256">The SHA-256 of an LFS file (its LFS object id).</param>
/// <param name="GitBlobId">The git blob id (SHA-1 of <c>"blob {size}\0"</c> and the content) of a file kept in git itself.</param>
internal sealed record HubFile(string Path, long Size, string? Sha256, string? GitBlobId)
{
    /// <summary>The name of its blob in the cache, as huggingface_hub names blobs: the SHA-256 of an LFS file, else the git blob id.</summary>
    public string BlobHash => Sha256 ?? GitBlobId ?? throw new InvalidOperationException($"{Path} has no hash.");

    /// <summary>Whether the listing gave what a download needs: a size, and a hash of the right form (lower-case hex).</summary>
    public bool IsValid => Size >= 0 && (Sha256 is not null
        ? Sha256.Length == 64 && HubRepositoryCache.IsBlobHash(Sha256)
        : GitBlobId is { Length: 40 } && HubRepositoryCache.IsBlobHash(GitBlobId));
}
