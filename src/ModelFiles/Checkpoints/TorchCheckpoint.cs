using System.Buffers;
using System.Collections;
using System.IO.Compression;
using System.IO.Hashing;
using Razorvine.Pickle;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// A PyTorch <c>torch.save</c> file (a zip of <c>data.pkl</c> plus raw storages) read without Python.
/// The pickle is checked against an allow-list before it is interpreted; tensor data is read only when asked for.
/// Every size the zip or the pickle declares is checked against the file's real size before anything is allocated,
/// and every entry read is checked against its CRC-32.
/// </summary>
public sealed class TorchCheckpoint : ITensorCheckpoint
{
    /// <summary>The largest <c>data.pkl</c> read; a state dict's pickle takes a few hundred bytes per tensor.</summary>
    public const long MaxPickleBytes = 64L << 20;

    /// <summary>The most an entry may claim to inflate to per stored byte (DEFLATE cannot do better than about 1032:1).</summary>
    private const long MaxInflation = 1032;

    /// <summary>How deep nested dictionaries beside the state dict (Whisper's <c>dims</c>) are read.</summary>
    private const int MaxMetadataDepth = 4;

    private readonly ZipArchive _archive;
    private readonly Dictionary<string, ZipArchiveEntry> _entries;
    private readonly string _prefix;
    private readonly long _fileLength;
    private readonly Lock _archiveLock = new();
    private int _disposed;

    private TorchCheckpoint(string path, ZipArchive archive, Dictionary<string, ZipArchiveEntry> entries, string prefix, long fileLength)
    {
        Path = path;
        _archive = archive;
        _entries = entries;
        _prefix = prefix;
        _fileLength = fileLength;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Every tensor of the state dict by name.</summary>
    public IReadOnlyDictionary<string, CheckpointTensor> Tensors { get; private set; } = new Dictionary<string, CheckpointTensor>();

    /// <summary>Top-level entries that are not the state dict, e.g. Whisper's <c>dims</c> (nested dicts flattened as "dims.n_mels").</summary>
    public IReadOnlyDictionary<string, object?> Metadata { get; private set; } = new Dictionary<string, object?>();

    /// <summary>Opens <paramref name="path"/>, checks its pickle and indexes its tensors.</summary>
    public static TorchCheckpoint Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        ZipArchive archive;
        Dictionary<string, ZipArchiveEntry> entries;
        long fileLength;
        try
        {
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            fileLength = stream.Length;
            try
            {
                archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false);
            }
            catch
            {
                stream.Dispose();
                throw;
            }

            try
            {
                // The central directory is read here, entry by entry: a broken one fails now, not on first use.
                entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
                foreach (var entry in archive.Entries)
                {
                    if (!entries.TryAdd(entry.FullName, entry))
                    {
                        throw new ModelFileException(path, $"the zip holds {entry.FullName} twice: corrupt or tampered with.", entry.FullName);
                    }
                }
            }
            catch
            {
                archive.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException or ArgumentException or OverflowException)
        {
            // The zip reader says what is wrong but not where: find the record it tripped on.
            var (offset, what) = ZipFaults.Locate(path);
            throw new ModelFileException(path, $"not a readable PyTorch zip checkpoint (truncated or corrupt, or a legacy pre-1.6 format): at byte {offset}, {what} ({e.Message})", innerException: e) { Offset = offset };
        }

        try
        {
            var pickleEntry = entries.Values.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) || e.FullName == "data.pkl")
                ?? throw new ModelFileException(path, $"the zip's {entries.Count} entries hold no data.pkl: not a torch.save checkpoint.", "data.pkl");
            string prefix = pickleEntry.FullName[..^"data.pkl".Length];
            var checkpoint = new TorchCheckpoint(path, archive, entries, prefix, fileLength);
            checkpoint.Load(checkpoint.ReadPickle(pickleEntry));
            return checkpoint;
        }
        catch
        {
            archive.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // ZipArchive is not safe to dispose from two threads: one caller does it, under the lock reads take.
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            lock (_archiveLock)
            {
                _archive.Dispose();
            }
        }
    }

    private void Load(byte[] pickle)
    {
        string entryName = _prefix + "data.pkl";
        var scoped = PickleAllowList.CheckAndScope(pickle, Path, entryName);
        object? root;
        // Razorvine reads a stream a byte at a time: where it stands when it throws is the end of the opcode it was running.
        using var program = new MemoryStream(scoped.Program, writable: false);
        ModelFileException NotAStateDict(Exception e)
        {
            long at = scoped.OriginalOffset(program.Position);
            return new ModelFileException(Path, $"the pickle in {entryName} is not a state dict (the opcode ending at or before offset {at}): {e.Message}", entryName, e) { Offset = at };
        }

        try
        {
            using var unpickler = new StateDictUnpickler();
            root = unpickler.load(program);
        }
        catch (CorruptPickleException e)
        {
            // Our own constructors' refusal of what the pickle asks them to build (a view that does not fit, a size that overflows).
            throw NotAStateDict(e);
        }
        catch (Exception e) when (e is not (ModelFileException or OutOfMemoryException) && ThirdPartyFaults.RaisedInside(e, typeof(Razorvine.Pickle.Unpickler).Assembly))
        {
            // The program holds only allow-listed globals; what Razorvine's interpreter refuses is a corrupt pickle. What our own
            // constructors raise is theirs to name (a ModelFileException), and anything else from them is a bug that propagates.
            throw NotAStateDict(e);
        }

        if (root is not IDictionary rootDictionary)
        {
            throw new ModelFileException(Path, $"the pickle holds a {root?.GetType().Name ?? "None"}, not a state dict.", entryName);
        }

        // Whisper's .pt wraps the state dict beside its dimensions; litgpt and SNAC save the state dict itself.
        IDictionary stateDict = rootDictionary;
        foreach (string wrapper in new[] { "model_state_dict", "state_dict" })
        {
            if (rootDictionary.Contains(wrapper) && rootDictionary[wrapper] is IDictionary inner)
            {
                stateDict = inner;
            }
        }

        var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in stateDict)
        {
            if (entry.Value is not TensorRecord record)
            {
                continue;
            }

            if (entry.Key is not string name)
            {
                throw new ModelFileException(Path, $"the state dict has a tensor under a key that is not a string but {entry.Key?.GetType().Name ?? "None"}: corrupt.", System.Convert.ToString(entry.Key, System.Globalization.CultureInfo.InvariantCulture) ?? "None");
            }

            tensors[name] = new TorchTensor(this, name, record);
        }

        if (!ReferenceEquals(stateDict, rootDictionary))
        {
            Flatten(rootDictionary, "", metadata, stateDict, depth: 0);
        }

        Tensors = tensors;
        Metadata = metadata;
    }

    // Nested dictionaries beside the state dict become "outer.inner" keys. Only string keys are read, only a few levels
    // deep: a hostile pickle may nest dictionaries thousands deep or put one inside itself.
    private static void Flatten(IDictionary dictionary, string prefix, Dictionary<string, object?> into, IDictionary skip, int depth)
    {
        foreach (DictionaryEntry entry in dictionary)
        {
            if (entry.Key is not string name || ReferenceEquals(entry.Value, skip))
            {
                continue;
            }

            string key = prefix + name;
            if (entry.Value is IDictionary nested)
            {
                if (depth + 1 < MaxMetadataDepth)
                {
                    Flatten(nested, key + ".", into, skip, depth + 1);
                }
            }
            else
            {
                into[key] = entry.Value;
            }
        }
    }

    private byte[] ReadPickle(ZipArchiveEntry entry)
    {
        CheckDeclaredSize(entry, null);
        if (entry.Length > MaxPickleBytes)
        {
            throw new ModelFileException(Path, $"{entry.FullName} declares {entry.Length} bytes; a state dict's pickle is far smaller (at most {MaxPickleBytes} bytes are read).", entry.FullName);
        }

        var bytes = new byte[entry.Length];
        ReadEntry(entry, 0, bytes, null);
        return bytes;
    }

    // A zip entry's sizes come from the archive and could claim anything: the stored bytes must lie in the file, and the
    // inflated size cannot exceed what DEFLATE can produce from them.
    private void CheckDeclaredSize(ZipArchiveEntry entry, string? tensorName)
    {
        if (entry.CompressedLength < 0 || entry.CompressedLength > _fileLength || entry.Length < 0
            || entry.Length > entry.CompressedLength * MaxInflation + 1024)
        {
            throw new ModelFileException(Path, $"{entry.FullName} declares {entry.Length} bytes stored in {entry.CompressedLength}, which a {_fileLength}-byte file cannot hold: corrupt.", tensorName ?? entry.FullName);
        }
    }

    /// <summary>
    /// Reads bytes [<paramref name="byteOffset"/>, + destination length) of <paramref name="entry"/>. The whole entry is
    /// streamed, so its length and CRC-32 are checked against the archive's record on every read.
    /// </summary>
    private void ReadEntry(ZipArchiveEntry entry, long byteOffset, Span<byte> destination, string? tensorName)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            using var stream = entry.Open();
            var crc = new Crc32();
            long position = 0;
            long end = byteOffset + destination.Length;
            int read;
            // One byte past the declared length tells an entry that inflates to more than it declared.
            while ((read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, entry.Length + 1 - position))) > 0)
            {
                var chunk = buffer.AsSpan(0, read);
                crc.Append(chunk);
                long copyFrom = Math.Max(position, byteOffset);
                long copyTo = Math.Min(position + read, end);
                if (copyFrom < copyTo)
                {
                    chunk[(int)(copyFrom - position)..(int)(copyTo - position)].CopyTo(destination[(int)(copyFrom - byteOffset)..]);
                }

                position += read;
                if (position > entry.Length)
                {
                    break;
                }
            }

            if (position != entry.Length)
            {
                throw new ModelFileException(Path, $"{entry.FullName} holds {(position > entry.Length ? "more" : position.ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes where the zip declares {entry.Length}: truncated or corrupt.", tensorName ?? entry.FullName);
            }

            if (crc.GetCurrentHashAsUInt32() != entry.Crc32)
            {
                throw new ModelFileException(Path, $"{entry.FullName} fails its CRC-32 check (0x{crc.GetCurrentHashAsUInt32():x8}, the zip says 0x{entry.Crc32:x8}): the file is corrupt.", tensorName ?? entry.FullName);
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException or NotSupportedException)
        {
            throw new ModelFileException(Path, $"cannot read {entry.FullName}: truncated or corrupt ({e.Message}).", tensorName ?? entry.FullName, e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The storage entry of <paramref name="key"/>, checked to hold its <paramref name="elements"/> before anything is allocated for it.</summary>
    private ZipArchiveEntry StorageEntry(string key, long elements, int elementSize, string tensorName)
    {
        string entryName = _prefix + "data/" + key;
        if (!_entries.TryGetValue(entryName, out var entry))
        {
            throw new ModelFileException(Path, $"storage {entryName} is missing from the zip.", tensorName);
        }

        CheckDeclaredSize(entry, tensorName);
        if (elements > entry.Length / elementSize)
        {
            throw new ModelFileException(Path, $"storage {entryName} has {entry.Length} bytes; its {elements} elements need {(decimal)elements * elementSize}: truncated or corrupt.", tensorName);
        }

        return entry;
    }

    private void ReadStorage(ZipArchiveEntry entry, long byteOffset, Span<byte> destination, string tensorName)
    {
        lock (_archiveLock)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            ReadEntry(entry, byteOffset, destination, tensorName);
        }
    }

    /// <summary>A storage reference from a persistent id: which zip entry, its element type and length.</summary>
    private sealed record StorageReference(string Key, SourceDType DType, long ElementCount);

    /// <summary>Marks which storage global a persistent id named.</summary>
    private sealed class StorageType(SourceDType dtype) : IObjectConstructor
    {
        public SourceDType DType { get; } = dtype;

        public object construct(object[] args) => throw new CorruptPickleException("storage types are only referenced, never constructed");
    }

    private sealed class TorchTensor : CheckpointTensor
    {
        private readonly TorchCheckpoint _owner;
        private readonly StorageReference _storage;
        private readonly long _offset;
        private readonly long[] _stride;

        public TorchTensor(TorchCheckpoint owner, string name, TensorRecord record)
            : base(name, owner.Path, record.Shape, record.Storage.DType)
        {
            _owner = owner;
            _storage = record.Storage;
            _offset = record.Offset;
            _stride = record.Stride;
        }

        public override float[] ReadFloat32()
        {
            if (ElementCount == 0)
            {
                return [];
            }

            int elementSize = ElementSize;
            long span;
            try
            {
                span = checked(1 + Shape.Select((size, d) => (size - 1) * _stride[d]).Sum());
            }
            catch (OverflowException)
            {
                span = long.MaxValue;
            }

            if (span > _storage.ElementCount - _offset || span > int.MaxValue / elementSize)
            {
                throw new ModelFileException(SourceFile, $"the tensor's view (offset {_offset}, shape [{string.Join(", ", Shape)}], stride [{string.Join(", ", _stride)}]) does not fit its storage of {_storage.ElementCount} elements.", Name);
            }

            // The entry must hold the whole storage the pickle declared before its bytes are allocated.
            var entry = _owner.StorageEntry(_storage.Key, _storage.ElementCount, elementSize, Name);
            var raw = new byte[span * elementSize];
            _owner.ReadStorage(entry, _offset * elementSize, raw, Name);
            var dense = new float[span];
            Decode(raw, dense);
            return IsContiguous() ? dense : Gather(dense);
        }

        private bool IsContiguous()
        {
            long expected = 1;
            for (int d = Shape.Count - 1; d >= 0; d--)
            {
                if (Shape[d] != 1 && _stride[d] != expected)
                {
                    return false;
                }

                expected *= Shape[d];
            }

            return true;
        }

        // A strided view (e.g. a transposed tensor saved as is): walk its indices in row-major order.
        private float[] Gather(float[] dense)
        {
            var result = new float[ElementCount];
            var index = new long[Shape.Count];
            for (long i = 0; i < result.LongLength; i++)
            {
                long source = 0;
                for (int d = 0; d < index.Length; d++)
                {
                    source += index[d] * _stride[d];
                }

                result[i] = dense[source];
                for (int d = index.Length - 1; d >= 0 && ++index[d] == Shape[d]; d--)
                {
                    index[d] = 0;
                }
            }

            return result;
        }
    }

    /// <summary>What _rebuild_tensor_v2 describes: a view of a storage. Bound to its file after unpickling.</summary>
    private sealed record TensorRecord(StorageReference Storage, long Offset, long[] Shape, long[] Stride);

    /// <summary>
    /// An unpickler that builds only the allow-listed globals. <see cref="PickleAllowList.CheckAndScope"/> turned each
    /// of them into a persistent id, resolved here to constructors of this instance: nothing is registered in
    /// Razorvine's process-wide constructor table, so other users of Razorvine in the process see no change.
    /// </summary>
    private sealed class StateDictUnpickler : Unpickler
    {
        private const int MaxDimensions = 8;

        private readonly Dictionary<string, IObjectConstructor> _globals = new(StringComparer.Ordinal)
        {
            [PickleAllowList.ScopedGlobalPrefix + "collections OrderedDict"] = new Constructor(_ => new PickledDictionary()),
            [PickleAllowList.ScopedGlobalPrefix + "torch._utils _rebuild_tensor_v2"] = new Constructor(RebuildTensor),
            [PickleAllowList.ScopedGlobalPrefix + "torch._utils _rebuild_parameter"] = new Constructor(args => args is { Length: > 0 } ? args[0] : throw new CorruptPickleException("_rebuild_parameter called without a tensor")),
            [PickleAllowList.ScopedGlobalPrefix + "torch FloatStorage"] = new StorageType(SourceDType.F32),
            [PickleAllowList.ScopedGlobalPrefix + "torch HalfStorage"] = new StorageType(SourceDType.F16),
            [PickleAllowList.ScopedGlobalPrefix + "torch BFloat16Storage"] = new StorageType(SourceDType.BF16),
        };

        // A string names one of our globals; torch's own ids are ('storage', storage type, key, location, numel).
        protected override object persistentLoad(object pid)
        {
            if (pid is string global)
            {
                return _globals.TryGetValue(global, out var constructor) ? constructor : throw new CorruptPickleException($"unexpected persistent id '{global}'");
            }

            if (pid is not object[] { Length: 5 } fields || fields[0] as string != "storage" || fields[1] is not StorageType type)
            {
                throw new CorruptPickleException($"unexpected persistent id {pid}");
            }

            if (fields[2] is not string key || key.Length == 0)
            {
                throw new CorruptPickleException("a storage's key is not a string");
            }

            long elements = Integer(fields[4], "a storage's element count");
            return elements >= 0 ? new StorageReference(key, type.DType, elements) : throw new CorruptPickleException($"a storage of {elements} elements");
        }

        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        private static object RebuildTensor(object[] args)
        {
            if (args is not { Length: >= 4 } || args[0] is not StorageReference storage)
            {
                throw new CorruptPickleException("_rebuild_tensor_v2 called without a storage");
            }

            long offset = Integer(args[1], "a tensor's storage offset");
            long[] shape = Integers(args[2], "a tensor's size");
            long[] stride = Integers(args[3], "a tensor's stride");
            if (shape.Length != stride.Length || shape.Length > MaxDimensions || offset < 0
                || shape.Any(d => d is < 0 or > int.MaxValue) || stride.Any(s => s is < 0 or > int.MaxValue))
            {
                throw new CorruptPickleException($"tensor size [{string.Join(", ", shape)}], stride [{string.Join(", ", stride)}] and offset {offset} do not describe a view");
            }

            try
            {
                _ = shape.Aggregate(1L, (a, b) => checked(a * b));
            }
            catch (OverflowException)
            {
                throw new CorruptPickleException($"tensor size [{string.Join(", ", shape)}] holds more elements than a tensor can");
            }

            return new TensorRecord(storage, offset, shape, stride);
        }

        private static long Integer(object? value, string what) => value switch
        {
            int i => i,
            long l => l,
            _ => throw new CorruptPickleException($"{what} is {value?.GetType().Name ?? "None"}, not an integer"),
        };

        private static long[] Integers(object? value, string what) => value is object[] items
            ? [.. items.Select(item => Integer(item, what))]
            : throw new CorruptPickleException($"{what} is {value?.GetType().Name ?? "None"}, not a tuple of integers");
    }

    private sealed class Constructor(Func<object[], object> build) : IObjectConstructor
    {
        public object construct(object[] args) => build(args);
    }

    /// <summary>An OrderedDict; its pickled state (PyTorch's <c>_metadata</c> version table) carries nothing we need.</summary>
    private sealed class PickledDictionary : Hashtable
    {
#pragma warning disable IDE1006, CA1707 // the name Razorvine looks up by reflection for BUILD
        public void __setstate__(Hashtable state)
#pragma warning restore IDE1006, CA1707
        {
            _ = state;
        }
    }
}

/// <summary>What the state dict's own constructors throw for a pickle that asks for something no state dict holds; the reader names the file and entry.</summary>
internal sealed class CorruptPickleException(string message) : Exception(message);
