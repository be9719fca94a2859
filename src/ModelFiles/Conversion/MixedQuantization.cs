using System.Buffers.Binary;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>
/// Quantizes a backbone GGUF with a type per tensor: feed-forward matrices in Q4_0 (which llama.cpp's CPU backend repacks
/// at load), attention matrices in Q8_0. LLamaSharp exposes llama.cpp's per-tensor overrides only as a pointer to a C++
/// <c>std::vector</c>, which .NET cannot build portably, so the file is written here, with ggml's own reference
/// rounding for both types.
/// </summary>
internal static class MixedQuantization
{
    private const int BlockElements = 32;
    private const int Q4BlockBytes = 18;

    /// <summary>The type <paramref name="tensorName"/> gets in the <see cref="ModelFileType.Q4_0_Mixed"/> layout.</summary>
    public static GgmlType TypeOf(string tensorName) =>
        tensorName.Contains(".ffn_", StringComparison.Ordinal) ? GgmlType.Q4_0 : GgmlType.Q8_0;

    /// <summary>Writes <paramref name="source"/> (an f32 backbone) to <paramref name="destination"/> with the mixed layout's types.</summary>
    public static void Quantize(string source, string destination, CancellationToken cancellationToken = default)
    {
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (var (key, value) in file.Metadata)
        {
            // llama.cpp only names the file type; 2 is "mostly Q4_0".
            if (key == "general.file_type")
            {
                writer.Add(key, 2u);
                continue;
            }

            _ = value switch
            {
                string text => writer.Add(key, text),
                uint number => writer.Add(key, number),
                int number => writer.Add(key, number),
                float number => writer.Add(key, number),
                bool flag => writer.Add(key, flag),
                _ => throw new ModelFileException(source, $"metadata of type {value.GetType().Name} is not copied by the mixed quantization.", key),
            };
        }

        foreach (var tensor in file.Tensors.Values.OrderBy(t => t.DataOffset))
        {
            bool matrix = tensor.Type == GgmlType.F32 && tensor.Dims.Count == 2 && tensor.Dims[0] % BlockElements == 0;
            var type = matrix ? TypeOf(tensor.Name) : tensor.Type;
            writer.AddTensor(tensor.Name, tensor.Dims, type, destination =>
            {
                if (!matrix)
                {
                    destination.Write(file.GetTensorBytes(tensor));
                    return;
                }

                // A row at a time: the f32 data is read from the mapped file, never all at once.
                long rowLength = tensor.Dims[0];
                var row = new float[rowLength];
                for (long r = 0; r < tensor.Dims[1]; r++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    file.ReadRow(tensor, r, row);
                    if (type == GgmlType.Q4_0)
                    {
                        WriteQ4_0(destination, row);
                    }
                    else
                    {
                        TensorEncoding.WriteQ8_0(destination, row);
                    }
                }
            });
        }

        writer.WriteTo(destination, cancellationToken: cancellationToken);
    }

    /// <summary>Writes <paramref name="values"/> as Q4_0 blocks (one f16 scale, 32 nibbles), rounding as ggml's reference quantizer does.</summary>
    public static void WriteQ4_0(Stream destination, ReadOnlySpan<float> values)
    {
        if (values.Length % BlockElements != 0)
        {
            throw new ArgumentException($"Q4_0 needs whole blocks of {BlockElements}; got {values.Length} values.", nameof(values));
        }

        Span<byte> block = stackalloc byte[Q4BlockBytes];
        for (int start = 0; start < values.Length; start += BlockElements)
        {
            var part = values.Slice(start, BlockElements);
            // The value of largest magnitude, with its sign, maps to -8.
            float max = 0, amax = 0;
            foreach (float v in part)
            {
                if (amax < MathF.Abs(v))
                {
                    amax = MathF.Abs(v);
                    max = v;
                }
            }

            float d = max / -8;
            float inverse = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int j = 0; j < BlockElements / 2; j++)
            {
                int low = Math.Min(15, (int)(sbyte)(part[j] * inverse + 8.5f));
                int high = Math.Min(15, (int)(sbyte)(part[BlockElements / 2 + j] * inverse + 8.5f));
                block[2 + j] = (byte)(low | (high << 4));
            }

            destination.Write(block);
        }
    }

    /// <summary>Decodes Q4_0 blocks (for tests).</summary>
    public static void DecodeQ4_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int block = 0; block < destination.Length / BlockElements; block++)
        {
            var bytes = source.Slice(block * Q4BlockBytes, Q4BlockBytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes);
            var output = destination.Slice(block * BlockElements, BlockElements);
            for (int j = 0; j < BlockElements / 2; j++)
            {
                output[j] = ((bytes[2 + j] & 0x0F) - 8) * d;
                output[BlockElements / 2 + j] = ((bytes[2 + j] >> 4) - 8) * d;
            }
        }
    }
}
