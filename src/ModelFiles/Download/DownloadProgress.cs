namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>Progress of a model's download: the file being fetched, and all the files this run fetches.</summary>
/// <param name="Repository">The Hugging Face repository, e.g. <c>gpt-omni/mini-omni</c>.</param>
/// <param name="FileName">The file's path in the repository.</param>
/// <param name="FileBytesDone">Bytes of this file on disk so far, including those of an earlier, interrupted run.</param>
/// <param name="FileBytes">The file's size as the hub lists it.</param>
/// <param name="BytesDone">Bytes on disk so far over every file this run fetches.</param>
/// <param name="TotalBytes">The size of every file this run fetches.</param>
public readonly record struct DownloadProgress(string Repository, string FileName, long FileBytesDone, long FileBytes, long BytesDone, long TotalBytes);
