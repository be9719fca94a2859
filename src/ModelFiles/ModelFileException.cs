namespace MiniOmni.SK.ModelFiles;

/// <summary>
/// A model file is missing, corrupt, inconsistent, or not what MiniOmni.SK expects; the message names the file and the
/// tensor, key, field or entry, or the byte (<see cref="Location"/>). This is the one exception every reader of model
/// files (checkpoints, configs, tokenizers, GGUF files, the engine's load) throws for a bad file: nothing else escapes for
/// one, and no native code sees it first.
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
    /// Where the fault lies, in bytes from the start of the file, or from the start of the zip entry that holds it (a
    /// checkpoint's <c>data.pkl</c>, which the message names); null for a fault that a key or tensor alone places, or that
    /// has no place in the file.
    /// </summary>
    public long? Offset { get; init; }

    /// <summary>For a text file (JSON, YAML), the line of <see cref="Offset"/>, counted from 1; null otherwise.</summary>
    public long? Line { get; init; }

    /// <summary>For a text file, the column of <see cref="Offset"/> in its <see cref="Line"/>, counted from 1; null otherwise.</summary>
    public long? Column { get; init; }

    /// <summary>
    /// Where the fault lies, for a reader: the key, tensor, field or entry, and the byte offset (with its line and column in a
    /// text file), e.g. <c>'archive/data.pkl' at byte 129</c> or <c>byte 57 (line 3, column 12)</c>. Null only for a fault
    /// of the whole file that has no place in it (not found, too large).
    /// </summary>
    public string? Location
    {
        get
        {
            string? at = Offset is { } offset
                ? Line is { } line ? $"byte {offset} (line {line}, column {Column})" : $"byte {offset}"
                : null;
            return (Key, at) switch
            {
                (null, null) => null,
                ({ } key, null) => $"'{key}'",
                (null, { } place) => place,
                ({ } key, { } place) => $"'{key}' at {place}",
            };
        }
    }

    private static string Compose(string filePath, string? key, string message) =>
        key is null ? $"{filePath}: {message}" : $"{filePath}: '{key}': {message}";
}
