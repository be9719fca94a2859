using System.Buffers.Binary;
using System.Text;

namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>
/// Writes a GGUF (version 3) file: metadata first, then tensors whose data is produced on demand,
/// so a multi-gigabyte model never sits in memory. The file appears only once complete.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>The data alignment ggml expects unless <c>general.alignment</c> says otherwise.</summary>
    public const int Alignment = 32;

    private const uint Magic = 0x46554747; // "GGUF"
    private const uint Version = 3;

    private readonly List<(string Key, GgufValueType Type, object Value)> _metadata = [];
    private readonly List<PendingTensor> _tensors = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Writes the bytes of one tensor into the file.</summary>
    public delegate void TensorDataWriter(Stream destination);

    private sealed record PendingTensor(string Name, long[] Dims, GgmlType Type, long ByteSize, TensorDataWriter WriteData);

    /// <summary>The number of tensors added so far.</summary>
    public int TensorCount => _tensors.Count;

    /// <summary>Adds a string value.</summary>
    public GgufWriter Add(string key, string value) => AddValue(key, GgufValueType.String, value);

    /// <summary>Adds an unsigned 32-bit value.</summary>
    public GgufWriter Add(string key, uint value) => AddValue(key, GgufValueType.UInt32, value);

    /// <summary>Adds a signed 32-bit value.</summary>
    public GgufWriter Add(string key, int value) => AddValue(key, GgufValueType.Int32, value);

    /// <summary>Adds a 32-bit float value.</summary>
    public GgufWriter Add(string key, float value) => AddValue(key, GgufValueType.Float32, value);

    /// <summary>Adds a boolean value.</summary>
    public GgufWriter Add(string key, bool value) => AddValue(key, GgufValueType.Bool, value);

    /// <summary>Adds an array of strings.</summary>
    public GgufWriter Add(string key, IReadOnlyList<string> values) => AddValue(key, GgufValueType.Array, new ArrayValue(GgufValueType.String, values.ToArray()));

    /// <summary>Adds an array of signed 32-bit values.</summary>
    public GgufWriter Add(string key, IReadOnlyList<int> values) => AddValue(key, GgufValueType.Array, new ArrayValue(GgufValueType.Int32, values.ToArray()));

    /// <summary>Adds an array of 32-bit floats.</summary>
    public GgufWriter Add(string key, IReadOnlyList<float> values) => AddValue(key, GgufValueType.Array, new ArrayValue(GgufValueType.Float32, values.ToArray()));

    /// <summary>
    /// Adds a tensor. <paramref name="dims"/> are in ggml order (innermost first, the reverse of PyTorch's);
    /// <paramref name="writeData"/> must write exactly the tensor's byte size when the file is written.
    /// </summary>
    public GgufWriter AddTensor(string name, IReadOnlyList<long> dims, GgmlType type, TensorDataWriter writeData)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.UTF8.GetByteCount(name) >= 64)
        {
            throw new ArgumentException($"Tensor name '{name}' is longer than ggml's 63-byte limit.", nameof(name));
        }

        if (dims.Count is < 1 or > 4 || dims.Any(d => d <= 0))
        {
            throw new ArgumentException($"Tensor '{name}' has unusable dimensions [{string.Join(", ", dims)}].", nameof(dims));
        }

        if (!_names.Add(name))
        {
            throw new ArgumentException($"Tensor '{name}' was added twice.", nameof(name));
        }

        long elements = dims.Aggregate(1L, (a, b) => a * b);
        _tensors.Add(new PendingTensor(name, [.. dims], type, GgmlTypeInfo.ByteSize(type, elements), writeData));
        return this;
    }

    /// <summary>Adds an F32, F16 or Q8_0 tensor from float data laid out row-major in PyTorch order (ggml dims are the reverse).</summary>
    public GgufWriter AddTensor(string name, IReadOnlyList<long> dims, GgmlType type, Func<float[]> readData)
    {
        return type switch
        {
            GgmlType.F32 or GgmlType.F16 => AddTensor(name, dims, type, destination => TensorEncoding.WriteFloats(destination, readData(), type)),
            GgmlType.Q8_0 => AddTensor(name, dims, type, destination => TensorEncoding.WriteQ8_0(destination, readData())),
            _ => throw new ArgumentException($"Tensor '{name}': float data can be written as F32, F16 or Q8_0, not {type}.", nameof(type)),
        };
    }

    /// <summary>
    /// Writes everything to <paramref name="path"/> through a temporary file beside it, renamed into place at the end:
    /// a failure or a cancellation leaves no partial file behind.
    /// </summary>
    public void WriteTo(string path, IProgress<GgufWriteProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        string fullPath = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(fullPath)!);
        string temporary = fullPath + $".{Environment.ProcessId}.{Guid.NewGuid():N}.partial";
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                WriteTo(file, progress, cancellationToken);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    private void WriteTo(Stream stream, IProgress<GgufWriteProgress>? progress, CancellationToken cancellationToken)
    {
        var output = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        output.Write(Magic);
        output.Write(Version);
        output.Write((ulong)_tensors.Count);
        output.Write((ulong)_metadata.Count);
        foreach (var (key, type, value) in _metadata)
        {
            WriteString(output, key);
            output.Write((uint)type);
            WriteValue(output, type, value);
        }

        long offset = 0;
        foreach (var tensor in _tensors)
        {
            WriteString(output, tensor.Name);
            output.Write((uint)tensor.Dims.Length);
            foreach (long dim in tensor.Dims)
            {
                output.Write((ulong)dim);
            }

            output.Write((uint)tensor.Type);
            output.Write((ulong)offset);
            offset = AlignUp(offset + tensor.ByteSize);
        }

        output.Flush();
        Pad(stream);
        long dataStart = stream.Position;
        long total = offset;
        for (int i = 0; i < _tensors.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var tensor = _tensors[i];
            long before = stream.Position;
            tensor.WriteData(stream);
            long written = stream.Position - before;
            if (written != tensor.ByteSize)
            {
                throw new InvalidOperationException($"Tensor '{tensor.Name}' wrote {written} bytes where {tensor.ByteSize} were expected.");
            }

            Pad(stream);
            progress?.Report(new GgufWriteProgress(tensor.Name, i + 1, _tensors.Count, stream.Position - dataStart, total));
        }
    }

    private GgufWriter AddValue(string key, GgufValueType type, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (_metadata.Any(entry => entry.Key == key))
        {
            throw new ArgumentException($"Metadata key '{key}' was added twice.", nameof(key));
        }

        _metadata.Add((key, type, value));
        return this;
    }

    private static void WriteValue(BinaryWriter output, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(output, (string)value); break;
            case GgufValueType.UInt32: output.Write((uint)value); break;
            case GgufValueType.Int32: output.Write((int)value); break;
            case GgufValueType.Float32: output.Write((float)value); break;
            case GgufValueType.Bool: output.Write((byte)((bool)value ? 1 : 0)); break;
            case GgufValueType.Array:
                var array = (ArrayValue)value;
                output.Write((uint)array.ElementType);
                output.Write((ulong)array.Count);
                foreach (object element in array.Elements)
                {
                    WriteValue(output, array.ElementType, element);
                }

                break;
            default: throw new NotSupportedException($"GGUF value type {type} is not written by this writer.");
        }
    }

    private static void WriteString(BinaryWriter output, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        output.Write((ulong)bytes.Length);
        output.Write(bytes);
    }

    private static long AlignUp(long value) => (value + Alignment - 1) / Alignment * Alignment;

    private static void Pad(Stream stream)
    {
        long padding = AlignUp(stream.Position) - stream.Position;
        Span<byte> zeros = stackalloc byte[Alignment];
        zeros.Clear();
        stream.Write(zeros[..(int)padding]);
    }

    private sealed class ArrayValue(GgufValueType elementType, System.Collections.ICollection elements)
    {
        public GgufValueType ElementType { get; } = elementType;

        public int Count => elements.Count;

        public System.Collections.IEnumerable Elements => elements;
    }
}

/// <summary>Progress of a GGUF write: tensors written and bytes of tensor data written.</summary>
public readonly record struct GgufWriteProgress(string TensorName, int TensorsWritten, int TensorCount, long BytesWritten, long TotalBytes);
