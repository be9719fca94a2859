using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

/// <summary>Builds small checkpoint files byte by byte, so each test controls exactly what the reader sees.</summary>
internal static class TestCheckpoints
{
    /// <summary>Emits pickle protocol 2 opcodes.</summary>
    public sealed class PickleBuilder
    {
        private readonly MemoryStream _bytes = new();

        public PickleBuilder() => Op(0x80).Byte(2);

        public PickleBuilder Op(byte opcode) => Byte(opcode);

        public PickleBuilder Global(string module, string name) => Op((byte)'c').Raw(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));

        public PickleBuilder String(string value)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            return Op((byte)'X').Raw(BitConverter.GetBytes(utf8.Length)).Raw(utf8);
        }

        public PickleBuilder Int(int value) => Op((byte)'J').Raw(BitConverter.GetBytes(value));

        public PickleBuilder Tuple(params int[] values)
        {
            Op((byte)'(');
            foreach (int value in values)
            {
                Int(value);
            }

            return Op((byte)'t');
        }

        /// <summary>One state-dict entry: name -> _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).</summary>
        public PickleBuilder Tensor(string name, string storageType, string key, int storageElements, int offset, int[] size, int[] stride)
        {
            String(name).Global("torch._utils", "_rebuild_tensor_v2").Op((byte)'(');
            Op((byte)'(').String("storage").Global("torch", storageType).String(key).String("cpu").Int(storageElements).Op((byte)'t').Op((byte)'Q');
            Int(offset).Tuple(size).Tuple(stride).Op(0x89).Global("collections", "OrderedDict").Op((byte)')').Op((byte)'R');
            return Op((byte)'t').Op((byte)'R').Op((byte)'s');
        }

        public byte[] ToArray() => _bytes.ToArray();

        private PickleBuilder Byte(byte value)
        {
            _bytes.WriteByte(value);
            return this;
        }

        private PickleBuilder Raw(byte[] value)
        {
            _bytes.Write(value);
            return this;
        }
    }

    /// <summary>Writes a torch.save-style zip: archive/data.pkl plus archive/data/KEY storages.</summary>
    public static string WriteTorchZip(string directory, string fileName, byte[] pickle, IReadOnlyDictionary<string, byte[]>? storages = null)
    {
        string path = Path.Combine(directory, fileName);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var stream = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open())
        {
            stream.Write(pickle);
        }

        foreach (var (key, data) in storages ?? new Dictionary<string, byte[]>())
        {
            using var stream = zip.CreateEntry($"archive/data/{key}", CompressionLevel.NoCompression).Open();
            stream.Write(data);
        }

        return path;
    }

    /// <summary>Writes a safetensors file of the given tensors (dtype name, shape, raw bytes).</summary>
    public static string WriteSafetensors(string path, IEnumerable<(string Name, string DType, long[] Shape, byte[] Data)> tensors)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        var data = new MemoryStream();
        foreach (var (name, dtype, shape, bytes) in tensors)
        {
            header[name] = new { dtype, shape, data_offsets = new[] { data.Length, data.Length + bytes.Length } };
            data.Write(bytes);
        }

        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var file = File.Create(path);
        file.Write(BitConverter.GetBytes((long)json.Length));
        file.Write(json);
        file.Write(data.ToArray());
        return path;
    }

    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
