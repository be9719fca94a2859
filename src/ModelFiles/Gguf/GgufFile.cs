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
    private const int MaxNameBytes = 64;
    private const string AlignmentKey = "general.alignment";
    private const uint MaxAlignment = 1 << 20;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _length;
    private readonly Dictionary<string, object> _metadata = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GgufTensorInfo> _tensors = new(StringComparer.Ordinal);
    private int _disposed;

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
            throw new ModelFileException(path, $"{length} bytes is too short for a GGUF header.") { Offset = length };
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

    /// <summary>
    /// Whether two ggml shapes (innermost first) are the same tensor shape: ggml drops trailing dimensions of 1 when it
    /// writes a file (llama.cpp's quantizer writes a [32, 1] tensor as [32]), so those do not count.
    /// </summary>
    public static bool SameShape(IReadOnlyList<long> first, IReadOnlyList<long> second)
    {
        static int Rank(IReadOnlyList<long> dims)
        {
            int rank = dims.Count;
            while (rank > 1 && dims[rank - 1] == 1)
            {
                rank--;
            }

            return rank;
        }

        int rank = Rank(first);
        return rank == Rank(second) && Enumerable.Range(0, rank).All(d => first[d] == second[d]);
    }

    /// <summary>The tensor <paramref name="name"/>; a missing tensor is an error naming it.</summary>
    public GgufTensorInfo GetTensor(string name) =>
        _tensors.TryGetValue(name, out var info) ? info : throw new ModelFileException(Path, "tensor not found.", name);

    /// <summary>The raw bytes of a tensor of this file, in place in the mapped file.</summary>
    public ReadOnlySpan<byte> GetTensorBytes(GgufTensorInfo tensor)
    {
        RequireOwn(tensor);
        if (tensor.ByteSize > int.MaxValue)
        {
            throw new ModelFileException(Path, $"{tensor.ByteSize} bytes is too large for one span; read it by rows.", tensor.Name);
        }

        return new ReadOnlySpan<byte>(_base + tensor.DataOffset, (int)tensor.ByteSize);
    }

    /// <summary>Reads a whole tensor as float32 (F32, F16, BF16 or Q8_0); another type is an error naming the tensor.</summary>
    public float[] ReadFloat32(string name)
    {
        var tensor = GetTensor(name);
        RequireDecodable(tensor);
        var values = new float[tensor.ElementCount];
        TensorEncoding.Decode(GetTensorBytes(tensor), tensor.Type, values);
        return values;
    }

    /// <summary>Decodes row <paramref name="row"/> of a 2-D tensor (a row is <c>Dims[0]</c> elements) into <paramref name="destination"/>.</summary>
    public void ReadRow(GgufTensorInfo tensor, long row, Span<float> destination)
    {
        RequireOwn(tensor);
        RequireDecodable(tensor);
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
        // One caller releases the map; a second, concurrent or later, returns at once.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    // Tensor infos are public records: one made up, or taken from another file, must never address memory outside this map.
    private void RequireOwn(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!_tensors.TryGetValue(tensor.Name, out var own) || own != tensor)
        {
            throw new ArgumentException($"'{tensor.Name}' is not a tensor of {Path}.", nameof(tensor));
        }
    }

    private void RequireDecodable(GgufTensorInfo tensor)
    {
        if (tensor.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0))
        {
            throw new ModelFileException(Path, $"{tensor.Type} data cannot be read here (F32, F16, BF16 or Q8_0); convert the model again with MiniOmni.SK.", tensor.Name);
        }
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
            throw new ModelFileException(Path, "not a GGUF file (bad magic).") { Offset = 0 };
        }

        Version = reader.U32();
        if (Version is < 2 or > 3)
        {
            throw new ModelFileException(Path, $"GGUF version {Version} is not supported (2 or 3).") { Offset = 4 };
        }

        ulong tensorCount = reader.U64();
        ulong metadataCount = reader.U64();
        // A metadata entry takes at least 13 bytes and a tensor entry 32: more than the file can hold means a corrupt
        // header, not an allocation.
        if (tensorCount > (ulong)_length / 32 || metadataCount > (ulong)_length / 13)
        {
            throw new ModelFileException(Path, $"header claims {tensorCount} tensors and {metadataCount} metadata entries, more than {_length} bytes can hold: corrupt.") { Offset = 8 };
        }

        for (ulong i = 0; i < metadataCount; i++)
        {
            string key = reader.String();
            var type = (GgufValueType)reader.U32();
            if (!_metadata.TryAdd(key, reader.Value(type, key)))
            {
                throw new ModelFileException(Path, "metadata key appears twice.", key);
            }
        }

        long alignment = Alignment();
        var infos = new List<(string Name, long[] Dims, GgmlType Type, ulong Offset)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = reader.String();
            if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) >= MaxNameBytes)
            {
                throw new ModelFileException(Path, $"tensor {i} has a name of {Encoding.UTF8.GetByteCount(name)} bytes; ggml allows 1 to {MaxNameBytes - 1}.", name);
            }

            uint dimCount = reader.U32();
            if (dimCount is 0 or > MaxDims)
            {
                throw new ModelFileException(Path, $"{dimCount} dimensions; ggml tensors have 1 to {MaxDims}.", name);
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

            infos.Add((name, dims, (GgmlType)reader.U32(), reader.U64()));
        }

        // Tensor data follows the header at the next multiple of the alignment; each tensor starts where the previous one
        // ended, padded to the alignment, as ggml writes and requires. A tensor whose type or shape was changed no longer
        // fits this layout, so its data cannot be misread: the next offset, or the end of the file, gives it away.
        long dataStart = AlignUp(reader.Position, alignment);
        long expectedOffset = 0;
        GgufTensorInfo? previous = null;
        foreach (var (name, dims, type, offset) in infos)
        {
            long byteSize = ByteSizeOf(name, dims, type);
            if (offset != (ulong)expectedOffset)
            {
                // The tensor before (whose type and shape give the size that ends at expectedOffset) is the likelier culprit.
                throw previous is null
                    ? new ModelFileException(Path, $"the first tensor's data starts at offset {offset}, not 0: corrupt.", name)
                    : new ModelFileException(Path, $"{previous.Type} [{string.Join(", ", previous.Dims)}] takes {previous.ByteSize} bytes, so its data ends at offset {expectedOffset}, but the next tensor, '{name}', starts at {offset}: a type or shape does not match the data (a relabelled type?), or the file is corrupt.", previous.Name);
            }

            long start = dataStart + expectedOffset;
            if (start > _length || byteSize > _length - start)
            {
                throw new ModelFileException(Path, $"{type} data [{start}, {start + byteSize}) lies past the end of the file ({_length} bytes): truncated?", name);
            }

            // ggml pads with zeros: data in the padding means the tensor's type or shape claims less than it holds.
            long paddingEnd = Math.Min(dataStart + AlignUp(expectedOffset + byteSize, alignment), _length);
            if (new ReadOnlySpan<byte>(_base + start + byteSize, (int)(paddingEnd - start - byteSize)).ContainsAnyExcept((byte)0))
            {
                throw new ModelFileException(Path, $"{type} [{string.Join(", ", dims)}] takes {byteSize} bytes, but data follows it in the padding to the next tensor: a type or shape does not match the data (a relabelled type?), or the file is corrupt.", name);
            }

            previous = new GgufTensorInfo(name, dims, type, start, byteSize);
            if (!_tensors.TryAdd(name, previous))
            {
                throw new ModelFileException(Path, "tensor appears twice.", name);
            }

            expectedOffset = AlignUp(expectedOffset + byteSize, alignment);
        }

        // Bytes after the last tensor's padded end mean the table describes less data than the file holds.
        if (infos.Count > 0 && _length > dataStart + expectedOffset)
        {
            throw new ModelFileException(Path, $"{previous!.Type} [{string.Join(", ", previous.Dims)}] takes {previous.ByteSize} bytes, but {_length - dataStart - expectedOffset} more follow it to the end of the file: a type or shape does not match the data (a relabelled type?), or the file is corrupt.", previous.Name);
        }
    }

    private long Alignment()
    {
        if (!_metadata.TryGetValue(AlignmentKey, out object? value))
        {
            return GgufWriter.Alignment;
        }

        // ggml reads this key as a u32 and aborts the process when it is another type.
        return value is uint alignment && alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= MaxAlignment
            ? alignment
            : throw new ModelFileException(Path, $"must be a power of two up to {MaxAlignment}, stored as u32; found {value} ({value.GetType().Name}).", AlignmentKey);
    }

    private long ByteSizeOf(string name, long[] dims, GgmlType type)
    {
        try
        {
            var (blockElements, _) = GgmlTypeInfo.Block(type);
            if (dims[0] % blockElements != 0)
            {
                throw new ModelFileException(Path, $"rows of {dims[0]} elements do not fill whole {type} blocks of {blockElements}.", name);
            }

            return GgmlTypeInfo.ByteSize(type, dims.Aggregate(1L, (a, b) => checked(a * b)));
        }
        catch (NotSupportedException)
        {
            throw new ModelFileException(Path, $"tensor type {(uint)type} is not one MiniOmni.SK reads.", name);
        }
        catch (OverflowException)
        {
            throw new ModelFileException(Path, $"dimensions [{string.Join(", ", dims)}] hold more elements than a tensor can.", name);
        }
    }

    private static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;

    private ref struct Reader(GgufFile file)
    {
        public long Position { get; private set; }

        public uint U32() => BitConverter.ToUInt32(Take(4));

        public ulong U64() => BitConverter.ToUInt64(Take(8));

        public string String()
        {
            ulong length = U64();
            if (length > (ulong)(file._length - Position) || length > int.MaxValue)
            {
                throw new ModelFileException(file.Path, $"a string of {length} bytes at offset {Position} runs past the end of the file: truncated or corrupt.") { Offset = Position - 8 };
            }

            long at = Position;
            try
            {
                return StrictUtf8.GetString(Take((int)length));
            }
            catch (DecoderFallbackException)
            {
                throw new ModelFileException(file.Path, $"the string at offset {at} is not valid UTF-8: corrupt.") { Offset = at };
            }
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
            GgufValueType.Bool => Bool(key),
            GgufValueType.String => String(),
            GgufValueType.UInt64 => U64(),
            GgufValueType.Int64 => BitConverter.ToInt64(Take(8)),
            GgufValueType.Float64 => BitConverter.ToDouble(Take(8)),
            GgufValueType.Array => Array(key),
            _ => throw new ModelFileException(file.Path, $"unknown value type {(uint)type}.", key),
        };

        private bool Bool(string key)
        {
            byte value = Take(1)[0];
            return value <= 1 ? value == 1 : throw new ModelFileException(file.Path, $"a boolean stored as {value}; GGUF booleans are 0 or 1.", key);
        }

        private object Array(string key)
        {
            var elementType = (GgufValueType)U32();
            ulong count = U64();
            // Each element takes at least its fixed size (a string at least its 8-byte length): bound the count by what
            // the rest of the file can hold before allocating anything.
            int minimumElementBytes = elementType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
                _ => throw new ModelFileException(file.Path, $"arrays of value type {(uint)elementType} are not supported.", key),
            };
            if (count > (ulong)(file._length - Position) / (ulong)minimumElementBytes)
            {
                throw new ModelFileException(file.Path, $"an array of {count} {elementType} elements cannot fit in the rest of the file: truncated or corrupt.", key);
            }

            return elementType switch
            {
                GgufValueType.String => Fill(count, ref this, static (ref Reader r) => r.String()),
                GgufValueType.UInt8 => Fill(count, ref this, static (ref Reader r) => r.Take(1)[0]),
                GgufValueType.Int8 => Fill(count, ref this, static (ref Reader r) => (sbyte)r.Take(1)[0]),
                GgufValueType.Bool => Fill(count, ref this, static (ref Reader r) => r.Take(1)[0] != 0),
                GgufValueType.UInt16 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToUInt16(r.Take(2))),
                GgufValueType.Int16 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToInt16(r.Take(2))),
                GgufValueType.UInt32 => Fill(count, ref this, static (ref Reader r) => r.U32()),
                GgufValueType.Int32 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToInt32(r.Take(4))),
                GgufValueType.Float32 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToSingle(r.Take(4))),
                GgufValueType.UInt64 => Fill(count, ref this, static (ref Reader r) => r.U64()),
                GgufValueType.Int64 => Fill(count, ref this, static (ref Reader r) => BitConverter.ToInt64(r.Take(8))),
                _ => Fill(count, ref this, static (ref Reader r) => BitConverter.ToDouble(r.Take(8))),
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
                throw new ModelFileException(file.Path, $"unexpected end of file at offset {Position}: truncated or corrupt header.") { Offset = Position };
            }

            var span = new ReadOnlySpan<byte>(file._base + Position, count);
            Position += count;
            return span;
        }
    }
}
