using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>One source of a converted model: its repository, the commit, and the hash of each file conversion read.</summary>
internal sealed record ConvertedSource(string Repository, string Commit, Dictionary<string, string> Files);

/// <summary>
/// What a converted model in the cache was made from, kept beside its files as <c>sources.json</c>. A model is
/// current when its sources are the pinned commits, or when they hold the same file contents (a push that only
/// touched a README converts nothing again).
/// </summary>
internal sealed record ConvertedFrom(int FormatVersion, List<ConvertedSource> Sources)
{
    public const string FileName = "sources.json";
    private const int CurrentFormat = 1;
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>The record of a conversion from <paramref name="pinned"/>; file hashes come from the kept listings.</summary>
    public static ConvertedFrom Of(IReadOnlyList<PinnedSource> pinned, HubSnapshots snapshots) => new(CurrentFormat,
        [.. pinned.Select(p => new ConvertedSource(p.Source.Repository, p.Commit,
            snapshots.KeptFiles(p)?.ToDictionary(f => f.Key, f => f.Value.BlobHash, StringComparer.Ordinal) ?? []))]);

    /// <summary>The record in <paramref name="directory"/>; null when there is none or it cannot be read (the model is converted again).</summary>
    public static ConvertedFrom? Read(string directory, ILogger logger)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            using var stream = File.OpenRead(path);
            var record = JsonSerializer.Deserialize<ConvertedFrom>(stream, Json);
            return record is { FormatVersion: CurrentFormat, Sources: not null } && record.Sources.All(s => s is { Repository: not null, Commit: not null, Files: not null }) ? record : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            logger.LogWarning("{Path} could not be read ({Reason}); the model is converted again.", path, e.Message);
            return null;
        }
    }

    /// <summary>Writes the record into <paramref name="directory"/> (through a temporary file, so a reader never sees half of it).</summary>
    public void Write(string directory)
    {
        string path = Path.Combine(directory, FileName);
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(temporary, JsonSerializer.Serialize(this, Json));
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Whether every source is at the same commit as in <paramref name="other"/>.</summary>
    public bool SameCommits(ConvertedFrom other) =>
        Sources.Count == other.Sources.Count
        && Sources.Zip(other.Sources).All(pair => pair.First.Repository == pair.Second.Repository && pair.First.Commit == pair.Second.Commit);

    /// <summary>Whether every source holds what <paramref name="other"/> holds: the same commit, or the same file hashes where both know them.</summary>
    public bool SameContent(ConvertedFrom other) =>
        Sources.Count == other.Sources.Count
        && Sources.Zip(other.Sources).All(pair => pair.First.Repository == pair.Second.Repository
            && (pair.First.Commit == pair.Second.Commit
                || (pair.First.Files.Count > 0 && pair.First.Files.Count == pair.Second.Files.Count
                    && pair.First.Files.All(f => pair.Second.Files.TryGetValue(f.Key, out string? hash) && hash == f.Value))));
}
