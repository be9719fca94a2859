using System.Buffers.Binary;
using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>A safetensors file: a JSON header of names, dtypes, shapes and byte ranges, then the raw data. Read lazily.</summary>
public sealed class SafetensorsCheckpoint : ITensorCheckpoint
{
    private const long MaxHeaderBytes = 100L << 20;
    private readonly FileStream _file;
    private readonly Lock _fileLock = new();

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
    public void Dispose() => _file.Dispose();

    private void ReadHeader()
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        if (_file.Read(lengthBytes) != 8)
        {
            throw new ModelFileException(Path, "too short for a safetensors header.");
        }

        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > _file.Length)
        {
            throw new ModelFileException(Path, $"header length {headerLength} does not fit a {_file.Length}-byte file: not safetensors, or truncated.");
        }

        var header = new byte[headerLength];
        _file.ReadExactly(header);
        long dataStart = 8 + headerLength;
        var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, object?>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(header);
            foreach (var entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    foreach (var item in entry.Value.EnumerateObject())
                    {
                        metadata[item.Name] = item.Value.ToString();
                    }

                    continue;
                }

                string dtypeName = entry.Value.GetProperty("dtype").GetString() ?? "";
                SourceDType dtype = dtypeName switch
                {
                    "F32" => SourceDType.F32,
                    "F16" => SourceDType.F16,
                    "BF16" => SourceDType.BF16,
                    _ => throw new ModelFileException(Path, $"unsupported dtype {dtypeName}; only F32, F16 and BF16 tensors can be read.", entry.Name),
                };
                long[] shape = [.. entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())];
                var offsets = entry.Value.GetProperty("data_offsets");
                long begin = offsets[0].GetInt64();
                long end = offsets[1].GetInt64();
                long elements = shape.Aggregate(1L, (a, b) => a * b);
                if (begin < 0 || end - begin != elements * (dtype == SourceDType.F32 ? 4 : 2) || dataStart + end > _file.Length)
                {
                    throw new ModelFileException(Path, $"byte range [{begin}, {end}) does not match shape [{string.Join(", ", shape)}] of {dtypeName} or lies past the end of the file: truncated or corrupt.", entry.Name);
                }

                tensors[entry.Name] = new SafetensorsTensor(this, entry.Name, shape, dtype, dataStart + begin);
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ModelFileException(Path, $"the safetensors header is not valid: {e.Message}", innerException: e);
        }

        Tensors = tensors;
        Metadata = metadata;
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
                owner._file.Position = fileOffset;
                owner._file.ReadExactly(raw);
            }

            var values = new float[ElementCount];
            Decode(raw, values);
            return values;
        }
    }
}
