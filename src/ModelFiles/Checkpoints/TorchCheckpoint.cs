using System.Collections;
using System.IO.Compression;
using System.Runtime.InteropServices;
using Razorvine.Pickle;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// A PyTorch <c>torch.save</c> file (a zip of <c>data.pkl</c> plus raw storages) read without Python.
/// The pickle is checked against an allow-list before it is interpreted; tensor data is read only when asked for.
/// </summary>
public sealed class TorchCheckpoint : ITensorCheckpoint
{
    private readonly ZipArchive _archive;
    private readonly string _prefix;
    private readonly Lock _archiveLock = new();

    private TorchCheckpoint(string path, ZipArchive archive, string prefix)
    {
        Path = path;
        _archive = archive;
        _prefix = prefix;
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
        try
        {
            archive = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new ModelFileException(path, $"not a readable PyTorch zip checkpoint (truncated or corrupt, or a legacy pre-1.6 format): {e.Message}", innerException: e);
        }

        try
        {
            var pickleEntry = archive.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) || e.FullName == "data.pkl")
                ?? throw new ModelFileException(path, "the zip has no data.pkl: not a torch.save checkpoint.");
            string prefix = pickleEntry.FullName[..^"data.pkl".Length];
            var checkpoint = new TorchCheckpoint(path, archive, prefix);
            checkpoint.Load(ReadEntry(path, pickleEntry));
            return checkpoint;
        }
        catch
        {
            archive.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _archive.Dispose();

    private void Load(byte[] pickle)
    {
        string entryName = _prefix + "data.pkl";
        PickleAllowList.Check(pickle, Path, entryName);
        object root;
        try
        {
            using var unpickler = new StateDictUnpickler();
            root = unpickler.loads(pickle);
        }
        catch (Exception e) when (e is PickleException or InvalidCastException or IndexOutOfRangeException or InvalidOperationException)
        {
            throw new ModelFileException(Path, $"the pickle in {entryName} is not a state dict: {e.Message}", innerException: e);
        }

        if (root is not IDictionary rootDictionary)
        {
            throw new ModelFileException(Path, $"the pickle holds a {root?.GetType().Name ?? "None"}, not a state dict.");
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
            if (entry.Value is TensorRecord record)
            {
                tensors[(string)entry.Key] = new TorchTensor(this, (string)entry.Key, record);
            }
        }

        if (!ReferenceEquals(stateDict, rootDictionary))
        {
            Flatten(rootDictionary, "", metadata, stateDict);
        }

        Tensors = tensors;
        Metadata = metadata;
    }

    private static void Flatten(IDictionary dictionary, string prefix, Dictionary<string, object?> into, IDictionary skip)
    {
        foreach (DictionaryEntry entry in dictionary)
        {
            string key = prefix + entry.Key;
            if (ReferenceEquals(entry.Value, skip))
            {
                continue;
            }

            if (entry.Value is IDictionary nested)
            {
                Flatten(nested, key + ".", into, skip);
            }
            else
            {
                into[key] = entry.Value;
            }
        }
    }

    private static byte[] ReadEntry(string path, ZipArchiveEntry entry)
    {
        try
        {
            using var stream = entry.Open();
            var bytes = new byte[entry.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new ModelFileException(path, $"cannot read {entry.FullName}: truncated or corrupt ({e.Message}).", innerException: e);
        }
    }

    private void ReadStorage(string key, long byteOffset, Span<byte> destination, string tensorName)
    {
        string entryName = _prefix + "data/" + key;
        lock (_archiveLock)
        {
            var entry = _archive.GetEntry(entryName) ?? throw new ModelFileException(Path, $"storage {entryName} is missing from the zip.", tensorName);
            if (byteOffset + destination.Length > entry.Length)
            {
                throw new ModelFileException(Path, $"storage {entryName} has {entry.Length} bytes; the tensor needs bytes up to {byteOffset + destination.Length}: truncated or corrupt.", tensorName);
            }

            try
            {
                using var stream = entry.Open();
                Skip(stream, byteOffset);
                stream.ReadExactly(destination);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
            {
                throw new ModelFileException(Path, $"cannot read storage {entryName}: truncated or corrupt ({e.Message}).", tensorName, e);
            }
        }
    }

    private static void Skip(Stream stream, long count)
    {
        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }

        var buffer = new byte[Math.Min(count, 1 << 20)];
        while (count > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (read == 0)
            {
                throw new EndOfStreamException();
            }

            count -= read;
        }
    }

    /// <summary>A storage reference from a persistent id: which zip entry, its element type and length.</summary>
    private sealed record StorageReference(string Key, SourceDType DType, long ElementCount);

    /// <summary>Marks which storage global a persistent id named.</summary>
    private sealed class StorageType(SourceDType dtype) : IObjectConstructor
    {
        public SourceDType DType { get; } = dtype;

        public object construct(object[] args) => throw new PickleException("storage types are only referenced, never constructed");
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
            int elementSize = ElementSize;
            long span = 1 + Shape.Select((size, d) => (size - 1) * _stride[d]).Sum();
            if (ElementCount == 0)
            {
                return [];
            }

            if (_offset < 0 || _offset + span > _storage.ElementCount || span * elementSize > int.MaxValue)
            {
                throw new ModelFileException(SourceFile, $"the tensor's view (offset {_offset}, shape [{string.Join(", ", Shape)}], stride [{string.Join(", ", _stride)}]) does not fit its storage of {_storage.ElementCount} elements.", Name);
            }

            var raw = new byte[span * elementSize];
            _owner.ReadStorage(_storage.Key, _offset * elementSize, raw, Name);
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
    /// An unpickler that builds only the allow-listed globals (already enforced by <see cref="PickleAllowList"/>).
    /// Razorvine keeps its constructors in one process-wide table, so ours are registered once and hold no state:
    /// everything that depends on the file happens in <see cref="persistentLoad"/> and after unpickling.
    /// </summary>
    private sealed class StateDictUnpickler : Unpickler
    {
        private static readonly Lazy<bool> Registered = new(() =>
        {
            registerConstructor("collections", "OrderedDict", new Constructor(_ => new PickledDictionary()));
            registerConstructor("torch._utils", "_rebuild_tensor_v2", new Constructor(RebuildTensor));
            registerConstructor("torch._utils", "_rebuild_parameter", new Constructor(args => args[0]));
            registerConstructor("torch", "FloatStorage", new StorageType(SourceDType.F32));
            registerConstructor("torch", "HalfStorage", new StorageType(SourceDType.F16));
            registerConstructor("torch", "BFloat16Storage", new StorageType(SourceDType.BF16));
            return true;
        });

        public StateDictUnpickler() => _ = Registered.Value;

        // ('storage', storage type, key, location, numel)
        protected override object persistentLoad(object pid)
        {
            if (pid is not object[] { Length: 5 } fields || fields[0] as string != "storage" || fields[1] is not StorageType type)
            {
                throw new PickleException($"unexpected persistent id {pid}");
            }

            return new StorageReference((string)fields[2], type.DType, System.Convert.ToInt64(fields[4]));
        }

        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        private static object RebuildTensor(object[] args)
        {
            if (args.Length < 4 || args[0] is not StorageReference storage)
            {
                throw new PickleException("_rebuild_tensor_v2 called without a storage");
            }

            long[] shape = ToLongs(args[2]);
            long[] stride = ToLongs(args[3]);
            if (shape.Length != stride.Length || shape.Any(d => d < 0))
            {
                throw new PickleException($"tensor size [{string.Join(", ", shape)}] and stride [{string.Join(", ", stride)}] do not match");
            }

            return new TensorRecord(storage, System.Convert.ToInt64(args[1]), shape, stride);
        }

        private static long[] ToLongs(object value) => value is object[] items
            ? [.. items.Select(System.Convert.ToInt64)]
            : throw new PickleException($"expected a tuple of integers, found {value?.GetType().Name ?? "None"}");
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
