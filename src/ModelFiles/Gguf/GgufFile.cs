using System.IO.MemoryMappedFiles;
using System.Text;

namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>Where one tensor lies in a GGUF file. <see cref="Dims"/> are in ggml order (innermost first).</summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<long> Dims, GgmlType Type, long DataOffset, long ByteSize)
{
    /// <summary>The product of <see cref="Dims"/>.</summary>
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A read-only, memory-mapped GGUF file: metadata parsed once, tensor data read in place without copying the file.
/// Every inconsistency (bad magic, a value or tensor past the end of the file) is a <see cref="ModelFileException"/>.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    private const uint Magic = 0x46554747;
    private const int MaxDims = 4;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _length;
    private readonly Dictionary<string, object> _metadata = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GgufTensorInfo> _tensors = new(StringComparer.Ordinal);
    private bool _disposed;

    private GgufFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _length = length;
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The GGUF version in the header.</summary>
    public uint Version { get; private set; }

    /// <summary>Metadata values: strings, numbers, booleans, and arrays of them.</summary>
    public IReadOnlyDictionary<string, object> Metadata => _metadata;

    /// <summary>The tensors in file order of their names.</summary>
    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors => _tensors;

    /// <summary>Opens and parses <paramref name="path"/>.</summary>
    public static GgufFile Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        long length = new FileInfo(path).Length;
        if (length < 24)
        {
            throw new ModelFileException(path, $"{length} bytes is too short for a GGUF header.");
        }

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            var file = new GgufFile(path, map, view, length);
            try
            {
                file.Parse();
                return file;
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }
        catch when (view is null)
        {
            map.Dispose();
            throw;
        }
    }

    /// <summary>The string at <paramref name="key"/>; a missing key or another type is an error naming the key.</summary>
    public string GetString(string key) => Get<string>(key);

    /// <summary>An integer value of any GGUF integer type at <paramref name="key"/>.</summary>
    public long GetInteger(string key)
    {
        object value = Get<object>(key);
        return value switch
        {
            byte or sbyte or ushort or short or uint or int or long => Convert.ToInt64(value),
            ulong u when u <= long.MaxValue => (long)u,
            _ => throw new ModelFileException(Path, $"expected an integer, found {value.GetType().Name}.", key),
        };
    }

    /// <summary>An integer at <paramref name="key"/>, or <paramref name="fallback"/> when absent.</summary>
    public long GetInteger(string key, long fallback) => _metadata.ContainsKey(key) ? GetInteger(key) : fallback;

    /// <summary>A float value (f32 or f64) at <paramref name="key"/>.</summary>
    public float GetFloat(string key) => Get<object>(key) switch
    {
        float f => f,
        double d => (float)d,
        var other => throw new ModelFileException(Path, $"expected a float, found {other.GetType().Name}.", key),
    };

    /// <summary>A boolean at <paramref name="key"/>, or <paramref name="fallback"/> when absent.</summary>
    public bool GetBool(string key, bool fallback) => _metadata.ContainsKey(key) ? Get<bool>(key) : fallback;

    /// <summary>An array at <paramref name="key"/> whose elements are <typeparamref name="T"/>.</summary>
    public T[] GetArray<T>(string key) => Get<object>(key) switch
    {
        T[] array => array,
        var other => throw new ModelFileException(Path, $"expected an array of {typeof(T).Name}, found {other.GetType().Name}.", key),
    };

    /// <summary>The tensor <paramref name="name"/>; a missing tensor is an error naming it.</summary>
    public GgufTensorInfo GetTensor(string name) =>
        _tensors.TryGetValue(name, out var info) ? info : throw new ModelFileException(Path, "tensor not found.", name);

    /// <summary>The raw bytes of a tensor, in place in the mapped file.</summary>
    public ReadOnlySpan<byte> GetTensorBytes(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tensor.ByteSize > int.MaxValue)
        {
            throw new ModelFileException(Path, $"{tensor.ByteSize} bytes is too large for one span; read it by rows.", tensor.Name);
        }

        return new ReadOnlySpan<byte>(_base + tensor.DataOffset, (int)tensor.ByteSize);
    }

    /// <summary>Reads a whole tensor as float32 (F32, F16, BF16 or Q8_0).</summary>
    public float[] ReadFloat32(string name)
    {
        var tensor = GetTensor(name);
        var values = new float[tensor.ElementCount];
        TensorEncoding.Decode(GetTensorBytes(tensor), tensor.Type, values);
        return values;
    }

    /// <summary>Decodes row <paramref name="row"/> of a 2-D tensor (a row is <c>Dims[0]</c> elements) into <paramref name="destination"/>.</summary>
    public void ReadRow(GgufTensorInfo tensor, long row, Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long rowElements = tensor.Dims[0];
        long rows = tensor.ElementCount / rowElements;
        if ((ulong)row >= (ulong)rows)
        {
            throw new ArgumentOutOfRangeException(nameof(row), $"Row {row} is outside '{tensor.Name}' ({rows} rows).");
        }

        if (destination.Length != rowElements)
        {
            throw new ArgumentException($"A row of '{tensor.Name}' has {rowElements} elements; the destination has {destination.Length}.", nameof(destination));
        }

        long rowBytes = GgmlTypeInfo.ByteSize(tensor.Type, rowElements);
        var bytes = new ReadOnlySpan<byte>(_base + tensor.DataOffset + row * rowBytes, (int)rowBytes);
        TensorEncoding.Decode(bytes, tensor.Type, destination);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private T Get<T>(string key)
    {
        if (!_metadata.TryGetValue(key, out object? value))
        {
            throw new ModelFileException(Path, "metadata key not found.", key);
        }

        return value is T typed ? typed : throw new ModelFileException(Path, $"expected {typeof(T).Name}, found {value.GetType().Name}.", key);
    }

    private void Parse()
    {
        var reader = new Reader(this);
        if (reader.U32() != Magic)
        {
            throw new ModelFileException(Path, "not a GGUF file (bad magic).");
        }

        Version = reader.U32();
        if (Version is < 2 or > 3)
        {
            throw new ModelFileException(Path, $"GGUF version {Version} is not supported (2 or 3).");
        }

        ulong tensorCount = reader.U64();
        ulong metadataCount = reader.U64();
        // Each entry takes at least 8 bytes; more than the file can hold means a corrupt header, not an allocation.
        if (tensorCount > (ulong)_length / 8 || metadataCount > (ulong)_length / 8)
        {
            throw new ModelFileException(Path, $"header claims {tensorCount} tensors and {metadataCount} metadata entries: corrupt.");
        }

        for (ulong i = 0; i < metadataCount; i++)
        {
            string key = reader.String();
            var type = (GgufValueType)reader.U32();
            _metadata[key] = reader.Value(type, key);
        }

        var infos = new List<(string Name, long[] Dims, GgmlType Type, long Offset)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = reader.String();
            uint dimCount = reader.U32();
            if (dimCount is 0 or > MaxDims)
            {
                throw new ModelFileException(Path, $"{dimCount} dimensions.", name);
            }

            var dims = new long[dimCount];
            for (int d = 0; d < dims.Length; d++)
            {
                ulong dim = reader.U64();
                if (dim is 0 or > int.MaxValue)
                {
                    throw new ModelFileException(Path, $"dimension {d} is {dim}.", name);
                }

                dims[d] = (long)dim;
            }

            infos.Add((name, dims, (GgmlType)reader.U32(), checked((long)reader.U64())));
        }

        long alignment = GetInteger("general.alignment", GgufWriter.Alignment);
        long dataStart = (reader.Position + alignment - 1) / alignment * alignment;
        foreach (var (name, dims, type, offset) in infos)
        {
            long byteSize;
            try
            {
                byteSize = GgmlTypeInfo.ByteSize(type, dims.Aggregate(1L, (a, b) => checked(a * b)));
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException or OverflowException)
            {
                throw new ModelFileException(Path, e.Message, name, e);
            }

            long start = dataStart + offset;
            if (offset < 0 || start + byteSize > _length)
            {
                throw new ModelFileException(Path, $"data [{start}, {start + byteSize}) lies past the end of the file ({_length} bytes): truncated?", name);
            }

            if (!_tensors.TryAdd(name, new GgufTensorInfo(name, dims, type, start, byteSize)))
            {
                throw new ModelFileException(Path, "tensor appears twice.", name);
            }
        }
    }

    private ref struct Reader(GgufFile file)
    {
        public long Position { get; private set; }

        public uint U32() => BitConverter.ToUInt32(Take(4));

        public ulong U64() => BitConverter.ToUInt64(Take(8));

        public string String()
        {
            ulong length = U64();
            if (length > (ulong)(file._length - Position))
            {
                throw new ModelFileException(file.Path, $"a string of {length} bytes at offset {Position} runs past the end of the file: truncated or corrupt.");
            }

            return Encoding.UTF8.GetString(Take((int)length));
        }

        public object Value(GgufValueType type, string key) => type switch
        {
            GgufValueType.UInt8 => Take(1)[0],
            GgufValueType.Int8 => (sbyte)Take(1)[0],
            GgufValueType.UInt16 => BitConverter.ToUInt16(Take(2)),
            GgufValueType.Int16 => BitConverter.ToInt16(Take(2)),
            GgufValueType.UInt32 => U32(),
            GgufValueType.Int32 => BitConverter.ToInt32(Take(4)),
            GgufValueType.Float32 => BitConverter.ToSingle(Take(4)),
            GgufValueType.Bool => Take(1)[0] != 0,
            GgufValueType.String => String(),
            GgufValueType.UInt64 => U64(),
            GgufValueType.Int64 => BitConverter.ToInt64(Take(8)),
            GgufValueType.Float64 => BitConverter.ToDouble(Take(8)),
            GgufValueType.Array => Array(key),
            _ => throw new ModelFileException(file.Path, $"unknown value type {(uint)type}.", key),
        };

        private object Array(string key)
        {
            var elementType = (GgufValueType)U32();
            ulong count = U64();
            if (count > (ulong)(file._length - Position))
            {
                throw new ModelFileException(file.Path, $"an array of {count} elements cannot fit in the rest of the file.", key);
            }

            return elementType switch
            {
                GgufValueType.String => Fill(count, ref this, static (ref Reader r) => r.String()),
                GgufValueType.Int32 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToInt32(r.Take(4))),
                GgufValueType.UInt32 => Fill(count, ref this, static (ref Reader r) => r.U32()),
                GgufValueType.Float32 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToSingle(r.Take(4))),
                GgufValueType.Int64 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToInt64(r.Take(8))),
                GgufValueType.UInt8 => Fill(count, ref this, static (ref Reader r) => r.Take(1)[0]),
                GgufValueType.Bool => Fill(count, ref this, static (ref Reader r) => r.Take(1)[0] != 0),
                _ => throw new ModelFileException(file.Path, $"arrays of {elementType} are not supported.", key),
            };
        }

        private delegate T ElementReader<T>(ref Reader reader);

        private static T[] Fill<T>(ulong count, ref Reader reader, ElementReader<T> read)
        {
            var values = new T[count];
            for (ulong i = 0; i < count; i++)
            {
                values[i] = read(ref reader);
            }

            return values;
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (Position + count > file._length)
            {
                throw new ModelFileException(file.Path, $"unexpected end of file at offset {Position}: truncated or corrupt header.");
            }

            var span = new ReadOnlySpan<byte>(file._base + Position, count);
            Position += count;
            return span;
        }
    }
}
