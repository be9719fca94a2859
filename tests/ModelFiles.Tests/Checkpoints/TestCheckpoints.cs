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

        public PickleBuilder Float(double value)
        {
            byte[] bytes = new byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteDoubleBigEndian(bytes, value);
            return Op((byte)'G').Raw(bytes);
        }

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

/// <summary>A zip written byte by byte, so a test can declare any size, CRC or compression the readers must not trust.</summary>
internal static class RawZip
{
    public sealed record Entry(string Name, byte[] Stored, bool Deflated, uint Crc32, long DeclaredLength);

    /// <summary>A stored entry whose header tells the truth about <paramref name="data"/>.</summary>
    public static Entry Stored(string name, byte[] data) => new(name, data, false, System.IO.Hashing.Crc32.HashToUInt32(data), data.Length);

    public static string Write(string path, params Entry[] entries)
    {
        using var file = File.Create(path);
        var output = new BinaryWriter(file);
        var offsets = new List<long>();
        foreach (var entry in entries)
        {
            offsets.Add(file.Position);
            output.Write(0x04034b50u);
            Header(output, entry);
            output.Write(Encoding.UTF8.GetBytes(entry.Name));
            output.Write(entry.Stored);
        }

        long directory = file.Position;
        for (int i = 0; i < entries.Length; i++)
        {
            output.Write(0x02014b50u);
            output.Write((ushort)20);
            Header(output, entries[i]);
            output.Write((ushort)0); // comment
            output.Write((ushort)0); // disk
            output.Write((ushort)0); // internal attributes
            output.Write(0u); // external attributes
            output.Write((uint)offsets[i]);
            output.Write(Encoding.UTF8.GetBytes(entries[i].Name));
        }

        long end = file.Position;
        output.Write(0x06054b50u);
        output.Write((ushort)0);
        output.Write((ushort)0);
        output.Write((ushort)entries.Length);
        output.Write((ushort)entries.Length);
        output.Write((uint)(end - directory));
        output.Write((uint)directory);
        output.Write((ushort)0);
        return path;
    }

    /// <summary>
    /// A raw DEFLATE stream of <paramref name="zeros"/> zero bytes in one fixed-Huffman block (a literal, then matches of
    /// 258 at distance 1): 13 bits per 258 bytes, so a gigabyte fits in under 7 MB and costs nothing to make.
    /// </summary>
    public static byte[] DeflatedZeros(long zeros)
    {
        var bits = new BitWriter();
        bits.Write(1, 1); // BFINAL
        bits.Write(1, 2); // BTYPE 01: fixed Huffman
        bits.WriteCode(0b00110000, 8); // literal 0
        long left = zeros - 1;
        while (left >= 258)
        {
            bits.WriteCode(0b11000101, 8); // length symbol 285: 258 bytes
            bits.WriteCode(0, 5); // distance code 0: distance 1
            left -= 258;
        }

        for (; left > 0; left--)
        {
            bits.WriteCode(0b00110000, 8);
        }

        bits.WriteCode(0, 7); // end of block (256)
        return bits.ToArray();
    }

    private static void Header(BinaryWriter output, Entry entry)
    {
        output.Write((ushort)20); // version needed
        output.Write((ushort)0); // flags
        output.Write((ushort)(entry.Deflated ? 8 : 0));
        output.Write((ushort)0); // time
        output.Write((ushort)0x21); // date: 1980-01-01
        output.Write(entry.Crc32);
        output.Write((uint)entry.Stored.Length);
        output.Write((uint)entry.DeclaredLength);
        output.Write((ushort)Encoding.UTF8.GetByteCount(entry.Name));
        output.Write((ushort)0); // extra
    }

    private sealed class BitWriter
    {
        private readonly MemoryStream _bytes = new();
        private int _current;
        private int _count;

        // Header fields go least significant bit first.
        public void Write(int value, int bits)
        {
            for (int i = 0; i < bits; i++)
            {
                Bit((value >> i) & 1);
            }
        }

        // Huffman codes go most significant bit first.
        public void WriteCode(int code, int bits)
        {
            for (int i = bits - 1; i >= 0; i--)
            {
                Bit((code >> i) & 1);
            }
        }

        public byte[] ToArray()
        {
            if (_count > 0)
            {
                _bytes.WriteByte((byte)_current);
            }

            return _bytes.ToArray();
        }

        private void Bit(int bit)
        {
            _current |= bit << _count;
            if (++_count == 8)
            {
                _bytes.WriteByte((byte)_current);
                _current = 0;
                _count = 0;
            }
        }
    }
}
