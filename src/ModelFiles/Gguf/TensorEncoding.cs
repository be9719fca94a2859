using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>Converts between float32 and the stored ggml element types this project reads and writes.</summary>
public static class TensorEncoding
{
    private const int Q8BlockElements = 32;
    private const int Q8BlockBytes = 34;

    /// <summary>Writes <paramref name="values"/> as little-endian F32 or F16.</summary>
    public static void WriteFloats(Stream destination, ReadOnlySpan<float> values, GgmlType type)
    {
        const int chunk = 1 << 16;
        int elementBytes = type switch
        {
            GgmlType.F32 => 4,
            GgmlType.F16 => 2,
            _ => throw new ArgumentException($"Float data can be written as F32 or F16, not {type}.", nameof(type)),
        };
        byte[] buffer = ArrayPool<byte>.Shared.Rent(chunk * elementBytes);
        try
        {
            for (int start = 0; start < values.Length; start += chunk)
            {
                var part = values.Slice(start, Math.Min(chunk, values.Length - start));
                Span<byte> bytes = buffer.AsSpan(0, part.Length * elementBytes);
                if (type == GgmlType.F32)
                {
                    MemoryMarshal.AsBytes(part).CopyTo(bytes);
                }
                else
                {
                    var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                    for (int i = 0; i < part.Length; i++)
                    {
                        halves[i] = (Half)part[i];
                    }
                }

                destination.Write(bytes);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Decodes <paramref name="destination"/>.Length elements of <paramref name="type"/> from <paramref name="source"/>.</summary>
    public static void Decode(ReadOnlySpan<byte> source, GgmlType type, Span<float> destination)
    {
        long needed = GgmlTypeInfo.ByteSize(type, destination.Length);
        if (source.Length < needed)
        {
            throw new ArgumentException($"{destination.Length} {type} elements need {needed} bytes; {source.Length} were given.", nameof(source));
        }

        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(source[..(int)needed]).CopyTo(destination);
                break;
            case GgmlType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(source[..(int)needed]);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = (float)halves[i];
                }

                break;
            case GgmlType.BF16:
                var brains = MemoryMarshal.Cast<byte, ushort>(source[..(int)needed]);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = BitConverter.Int32BitsToSingle(brains[i] << 16);
                }

                break;
            case GgmlType.Q8_0:
                for (int block = 0; block < destination.Length / Q8BlockElements; block++)
                {
                    var bytes = source.Slice(block * Q8BlockBytes, Q8BlockBytes);
                    float scale = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes);
                    var quants = MemoryMarshal.Cast<byte, sbyte>(bytes[2..]);
                    var output = destination.Slice(block * Q8BlockElements, Q8BlockElements);
                    for (int i = 0; i < Q8BlockElements; i++)
                    {
                        output[i] = quants[i] * scale;
                    }
                }

                break;
            default:
                throw new NotSupportedException($"Reading {type} tensors is not supported; convert with --type f32, f16 or q8_0 embeddings.");
        }
    }
}
