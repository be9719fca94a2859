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

    /// <summary>Writes <paramref name="values"/> as Q8_0 blocks (one f16 scale, 32 int8), rounding as ggml's reference quantizer does.</summary>
    public static void WriteQ8_0(Stream destination, ReadOnlySpan<float> values)
    {
        if (values.Length % Q8BlockElements != 0)
        {
            throw new ArgumentException($"Q8_0 needs whole blocks of {Q8BlockElements}; got {values.Length} values.", nameof(values));
        }

        Span<byte> block = stackalloc byte[Q8BlockBytes];
        for (int start = 0; start < values.Length; start += Q8BlockElements)
        {
            var part = values.Slice(start, Q8BlockElements);
            float scale = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(part) is var amax and not 0 ? MathF.Abs(amax) / 127f : 0f;
            float inverse = scale == 0 ? 0 : 1f / scale;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)scale);
            for (int i = 0; i < Q8BlockElements; i++)
            {
                block[2 + i] = (byte)(sbyte)MathF.Round(part[i] * inverse, MidpointRounding.AwayFromZero);
            }

            destination.Write(block);
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
