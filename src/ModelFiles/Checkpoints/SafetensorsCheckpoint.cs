using System.Buffers.Binary;
using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>A safetensors file: a JSON header of names, dtypes, shapes and byte ranges, then the raw data. Read lazily.</summary>
public sealed class SafetensorsCheckpoint : ITensorCheckpoint
{
    private const long MaxHeaderBytes = 100L << 20;
    private const int MaxDimensions = 8;
    private readonly FileStream _file;
    private readonly Lock _fileLock = new();
    private int _disposed;

    private SafetensorsCheckpoint(string path, FileStream file)
    {
        Path = path;
        _file = file;
    }

    /// <inheritdoc />
    public string Path { get; }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, CheckpointTensor> Tensors { get; private set; } = new Dictionary<string, CheckpointTensor>();

    /// <inheritdoc />
    public IReadOnlyDictionary<string, object?> Metadata { get; private set; } = new Dictionary<string, object?>();

    /// <summary>Opens <paramref name="path"/> and checks every tensor's byte range against the file.</summary>
    public static SafetensorsCheckpoint Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var checkpoint = new SafetensorsCheckpoint(path, file);
        try
        {
            checkpoint.ReadHeader();
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // One caller closes the file, under the lock reads take; a second, concurrent or later, returns at once.
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            lock (_fileLock)
            {
                _file.Dispose();
            }
        }
    }

    private void ReadHeader()
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        if (_file.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) != 8)
        {
            throw new ModelFileException(Path, $"{_file.Length} bytes is too short for the 8-byte header length at byte 0.") { Offset = 0 };
        }

        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > _file.Length)
        {
            throw new ModelFileException(Path, $"the header length at byte 0, {headerLength}, does not fit a {_file.Length}-byte file: not safetensors, or truncated.") { Offset = 0 };
        }

        var header = new byte[headerLength];
        _file.ReadExactly(header);
        long dataStart = 8 + headerLength;
        long dataLength = _file.Length - dataStart;
        var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, object?>(StringComparer.Ordinal);
        using (var document = TextPositions.ParseJson(Path, header, "the safetensors header", fileOffset: 8))
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw TextPositions.NotAnObject(Path, header, document.RootElement.ValueKind, "a safetensors header", fileOffset: 8);
            }

            ReadEntries(document.RootElement, dataStart, dataLength, tensors, metadata);
        }

        Tensors = tensors;
        Metadata = metadata;
    }

    private void ReadEntries(JsonElement root, long dataStart, long dataLength, Dictionary<string, CheckpointTensor> tensors, Dictionary<string, object?> metadata)
    {
        int index = 0;
        foreach (var entry in root.EnumerateObject())
        {
            string entryName = Unicode(() => entry.Name, $"the name of header entry {index++}");
            if (entryName == "__metadata__")
            {
                if (entry.Value.ValueKind != JsonValueKind.Object)
                {
                    throw new ModelFileException(Path, $"expected an object of strings, found a JSON {entry.Value.ValueKind}.", "__metadata__");
                }

                foreach (var item in entry.Value.EnumerateObject())
                {
                    string key = Unicode(() => item.Name, "__metadata__");
                    metadata[key] = Unicode(() => item.Value.ToString(), $"__metadata__.{key}");
                }

                continue;
            }

            var tensor = ReadTensorEntry(entry, entryName, dataStart, dataLength);
            if (!tensors.TryAdd(entryName, tensor))
            {
                throw new ModelFileException(Path, "the tensor appears twice in the header.", entryName);
            }
        }
    }

    // A string of the header as System.Text.Json reads it, which refuses (InvalidOperationException) a name or value whose
    // escapes make a lone surrogate (\ud800): only that read is relabelled, naming the key, with the original inside.
    private string Unicode(Func<string> read, string key)
    {
        try
        {
            return read();
        }
        catch (InvalidOperationException e)
        {
            throw new ModelFileException(Path, $"the safetensors header holds a string that is not well-formed Unicode: {e.Message}", key, e);
        }
    }

    // One header entry: {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, every field checked.
    private SafetensorsTensor ReadTensorEntry(JsonProperty entry, string name, long dataStart, long dataLength)
    {
        if (entry.Value.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFileException(Path, $"expected an object with dtype, shape and data_offsets, found a JSON {entry.Value.ValueKind}.", name);
        }

        JsonElement Field(string field, JsonValueKind kind) =>
            entry.Value.TryGetProperty(field, out var value) && value.ValueKind == kind
                ? value
                : throw new ModelFileException(Path, $"'{field}' is missing or not a JSON {kind}.", name);

        var dtypeElement = Field("dtype", JsonValueKind.String);
        string dtypeName = Unicode(() => dtypeElement.GetString() ?? "", name);
        SourceDType dtype = dtypeName switch
        {
            "F32" => SourceDType.F32,
            "F16" => SourceDType.F16,
            "BF16" => SourceDType.BF16,
            _ => throw new ModelFileException(Path, $"unsupported dtype {dtypeName}; only F32, F16 and BF16 tensors can be read.", name),
        };
        var shapeElement = Field("shape", JsonValueKind.Array);
        if (shapeElement.GetArrayLength() > MaxDimensions)
        {
            throw new ModelFileException(Path, $"a shape of {shapeElement.GetArrayLength()} dimensions; at most {MaxDimensions} are read.", name);
        }

        long[] shape = [.. shapeElement.EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out long size) && size >= 0
            ? size
            : throw new ModelFileException(Path, $"shape {shapeElement.GetRawText()} holds something other than non-negative integers.", name))];
        var offsets = Field("data_offsets", JsonValueKind.Array);
        long[] range = [.. offsets.EnumerateArray().Select(o => o.ValueKind == JsonValueKind.Number && o.TryGetInt64(out long at) && at >= 0
            ? at
            : throw new ModelFileException(Path, $"data_offsets {offsets.GetRawText()} hold something other than non-negative integers.", name))];
        if (range.Length != 2)
        {
            throw new ModelFileException(Path, $"data_offsets {offsets.GetRawText()} must be [begin, end].", name);
        }

        long elementSize = dtype == SourceDType.F32 ? 4 : 2;
        long bytes;
        try
        {
            bytes = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * elementSize);
        }
        catch (OverflowException)
        {
            bytes = -1;
        }

        if (range[0] > range[1] || range[1] > dataLength || range[1] - range[0] != bytes)
        {
            throw new ModelFileException(Path, $"byte range [{range[0]}, {range[1]}) does not match shape [{string.Join(", ", shape)}] of {dtypeName} ({(bytes < 0 ? "too many" : bytes.ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes) or lies past the end of the data ({dataLength} bytes): truncated or corrupt.", name);
        }

        return new SafetensorsTensor(this, name, shape, dtype, dataStart + range[0]);
    }

    private sealed class SafetensorsTensor(SafetensorsCheckpoint owner, string name, long[] shape, SourceDType dtype, long fileOffset)
        : CheckpointTensor(name, owner.Path, shape, dtype)
    {
        public override float[] ReadFloat32()
        {
            int elementSize = ElementSize;
            var raw = new byte[checked(ElementCount * elementSize)];
            lock (owner._fileLock)
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref owner._disposed) != 0, owner);
                try
                {
                    owner._file.Position = fileOffset;
                    owner._file.ReadExactly(raw);
                }
                catch (Exception e) when (e is IOException)
                {
                    throw new ModelFileException(owner.Path, $"cannot read the tensor's data: {e.Message}", Name, e);
                }
            }

            var values = new float[ElementCount];
            Decode(raw, values);
            return values;
        }
    }
}
