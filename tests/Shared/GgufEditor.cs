using System.Text;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Tests;

/// <summary>
/// A GGUF file as an editable list of metadata and tensors, written back with the layout GGUF requires (each tensor's
/// data where the previous one's ends, padded to 32 bytes). Tests change one value, type or tensor and check that the
/// readers name exactly that; the fuzzers change many. Data is laid out by its real length, so a tensor whose type is
/// changed without its data (a relabelled type) keeps its bytes.
/// </summary>
public sealed class GgufEditor
{
    private const int Alignment = 32;

    public List<KeyValuePair<string, object>> Metadata { get; } = [];

    public List<EditableTensor> Tensors { get; } = [];

    public static GgufEditor Load(string path)
    {
        using var file = GgufFile.Open(path);
        var editor = new GgufEditor();
        editor.Metadata.AddRange(file.Metadata);
        foreach (var tensor in file.Tensors.Values.OrderBy(t => t.DataOffset))
        {
            editor.Tensors.Add(new EditableTensor(tensor.Name, [.. tensor.Dims], tensor.Type, file.GetTensorBytes(tensor).ToArray()));
        }

        return editor;
    }

    public GgufEditor Clone()
    {
        var copy = new GgufEditor();
        copy.Metadata.AddRange(Metadata);
        copy.Tensors.AddRange(Tensors.Select(t => t with { Dims = [.. t.Dims], Data = t.Data }));
        return copy;
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> (its GGUF type follows the CLR type), adding it if absent.</summary>
    public GgufEditor Set(string key, object value)
    {
        int index = Metadata.FindIndex(entry => entry.Key == key);
        if (index >= 0)
        {
            Metadata[index] = KeyValuePair.Create(key, value);
        }
        else
        {
            Metadata.Add(KeyValuePair.Create(key, value));
        }

        return this;
    }

    public GgufEditor Remove(string key)
    {
        Metadata.RemoveAll(entry => entry.Key == key);
        return this;
    }

    public object Get(string key) => Metadata.First(entry => entry.Key == key).Value;

    public EditableTensor Tensor(string name) => Tensors.First(t => t.Name == name);

    /// <summary>Replaces the tensor <paramref name="name"/> by <paramref name="replacement"/>'s result.</summary>
    public GgufEditor Change(string name, Func<EditableTensor, EditableTensor> replacement)
    {
        int index = Tensors.FindIndex(t => t.Name == name);
        Tensors[index] = replacement(Tensors[index]);
        return this;
    }

    /// <summary>Re-encodes an F32 or F16 tensor as <paramref name="type"/> (F32 or F16): a well-formed file with another type.</summary>
    public GgufEditor Retype(string name, GgmlType type) => Change(name, tensor =>
    {
        var values = new float[tensor.Dims.Aggregate(1L, (a, b) => a * b)];
        TensorEncoding.Decode(tensor.Data, tensor.Type, values);
        using var encoded = new MemoryStream();
        TensorEncoding.WriteFloats(encoded, values, type);
        return tensor with { Type = type, Data = encoded.ToArray() };
    });

    public void Save(string path) => File.WriteAllBytes(path, ToBytes());

    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        var output = new BinaryWriter(stream, Encoding.UTF8);
        output.Write(0x46554747u);
        output.Write(3u);
        output.Write((ulong)Tensors.Count);
        output.Write((ulong)Metadata.Count);
        foreach (var (key, value) in Metadata)
        {
            WriteString(output, key);
            WriteValue(output, value, withType: true);
        }

        long offset = 0;
        foreach (var tensor in Tensors)
        {
            WriteString(output, tensor.Name);
            output.Write((uint)tensor.Dims.Length);
            foreach (long dim in tensor.Dims)
            {
                output.Write((ulong)dim);
            }

            output.Write((uint)tensor.Type);
            output.Write((ulong)offset);
            offset = AlignUp(offset + tensor.Data.Length);
        }

        Pad(output);
        foreach (var tensor in Tensors)
        {
            output.Write(tensor.Data);
            Pad(output);
        }

        output.Flush();
        return stream.ToArray();
    }

    private static long AlignUp(long value) => (value + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter output)
    {
        output.Flush();
        long position = output.BaseStream.Position;
        output.Write(new byte[AlignUp(position) - position]);
    }

    private static void WriteString(BinaryWriter output, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        output.Write((ulong)bytes.Length);
        output.Write(bytes);
    }

    private static void WriteValue(BinaryWriter output, object value, bool withType)
    {
        void Type(GgufValueType type)
        {
            if (withType)
            {
                output.Write((uint)type);
            }
        }

        switch (value)
        {
            case byte v: Type(GgufValueType.UInt8); output.Write(v); break;
            case sbyte v: Type(GgufValueType.Int8); output.Write(v); break;
            case ushort v: Type(GgufValueType.UInt16); output.Write(v); break;
            case short v: Type(GgufValueType.Int16); output.Write(v); break;
            case uint v: Type(GgufValueType.UInt32); output.Write(v); break;
            case int v: Type(GgufValueType.Int32); output.Write(v); break;
            case float v: Type(GgufValueType.Float32); output.Write(v); break;
            case bool v: Type(GgufValueType.Bool); output.Write((byte)(v ? 1 : 0)); break;
            case string v: Type(GgufValueType.String); WriteString(output, v); break;
            case ulong v: Type(GgufValueType.UInt64); output.Write(v); break;
            case long v: Type(GgufValueType.Int64); output.Write(v); break;
            case double v: Type(GgufValueType.Float64); output.Write(v); break;
            case Array array:
                Type(GgufValueType.Array);
                output.Write((uint)ElementType(array));
                output.Write((ulong)array.Length);
                foreach (object element in array)
                {
                    WriteValue(output, element, withType: false);
                }

                break;
            default: throw new ArgumentException($"No GGUF type for {value.GetType().Name}.", nameof(value));
        }
    }

    private static GgufValueType ElementType(Array array) => array switch
    {
        byte[] => GgufValueType.UInt8,
        sbyte[] => GgufValueType.Int8,
        ushort[] => GgufValueType.UInt16,
        short[] => GgufValueType.Int16,
        uint[] => GgufValueType.UInt32,
        int[] => GgufValueType.Int32,
        float[] => GgufValueType.Float32,
        bool[] => GgufValueType.Bool,
        string[] => GgufValueType.String,
        ulong[] => GgufValueType.UInt64,
        long[] => GgufValueType.Int64,
        double[] => GgufValueType.Float64,
        _ => throw new ArgumentException($"No GGUF array type for {array.GetType().Name}."),
    };
}

/// <summary>One tensor of a <see cref="GgufEditor"/>: ggml dims (innermost first), type and raw data.</summary>
public sealed record EditableTensor(string Name, long[] Dims, GgmlType Type, byte[] Data);
