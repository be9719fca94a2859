namespace MiniOmni.SK.ModelFiles;

/// <summary>
/// A model file is missing, corrupt, inconsistent, or not what MiniOmni.SK expects; the message names the file and the
/// tensor, key, field or entry. This is the one exception every reader of model files (checkpoints, configs, tokenizers,
/// GGUF files, the engine's load) throws for a bad file: nothing else escapes for one, and no native code sees it first.
/// </summary>
public sealed class ModelFileException : Exception
{
    /// <summary>Creates the exception for <paramref name="filePath"/>, optionally naming the tensor or key at fault.</summary>
    public ModelFileException(string filePath, string message, string? key = null, Exception? innerException = null)
        : base(Compose(filePath, key, message), innerException)
    {
        FilePath = filePath;
        Key = key;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>The tensor name or metadata key at fault, if one is.</summary>
    public string? Key { get; }

    /// <summary>
    /// Where in the file the fault lies, in bytes from its start (or from the start of the named zip entry), for faults of
    /// the file's structure that no key or tensor names; null otherwise.
    /// </summary>
    public long? Offset { get; init; }

    private static string Compose(string filePath, string? key, string message) =>
        key is null ? $"{filePath}: {message}" : $"{filePath}: '{key}': {message}";
}
