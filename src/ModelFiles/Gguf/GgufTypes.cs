namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>Value types of GGUF metadata, numbered as gguf.h numbers them.</summary>
public enum GgufValueType : uint
{
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 0,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 1,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 2,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 3,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 4,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 5,
    /// <summary>IEEE binary32.</summary>
    Float32 = 6,
    /// <summary>One byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>UTF-8 with a 64-bit length prefix.</summary>
    String = 8,
    /// <summary>Element type, 64-bit count, elements.</summary>
    Array = 9,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 10,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 11,
    /// <summary>IEEE binary64.</summary>
    Float64 = 12,
}

/// <summary>The ggml tensor types this project reads or writes, numbered as ggml.h numbers them.</summary>
public enum GgmlType : uint
{
    /// <summary>32-bit float.</summary>
    F32 = 0,
    /// <summary>16-bit float.</summary>
    F16 = 1,
    /// <summary>Blocks of 32 4-bit values with one f16 scale.</summary>
    Q4_0 = 2,
    /// <summary>Blocks of 32 4-bit values with f16 scale and minimum.</summary>
    Q4_1 = 3,
    /// <summary>Blocks of 32 5-bit values with one f16 scale (llama.cpp's fallback for rows too narrow for k-quants).</summary>
    Q5_0 = 6,
    /// <summary>Blocks of 32 5-bit values with f16 scale and minimum.</summary>
    Q5_1 = 7,
    /// <summary>Blocks of 32 int8 with one f16 scale.</summary>
    Q8_0 = 8,
    /// <summary>2-bit k-quant super-blocks of 256.</summary>
    Q2_K = 10,
    /// <summary>3-bit k-quant super-blocks of 256.</summary>
    Q3_K = 11,
    /// <summary>4-bit k-quant super-blocks of 256.</summary>
    Q4_K = 12,
    /// <summary>5-bit k-quant super-blocks of 256.</summary>
    Q5_K = 13,
    /// <summary>6-bit k-quant super-blocks of 256.</summary>
    Q6_K = 14,
    /// <summary>4-bit non-linear blocks of 32.</summary>
    IQ4_NL = 20,
    /// <summary>bfloat16.</summary>
    BF16 = 30,
}

/// <summary>Block geometry of the ggml types, for sizes and offsets.</summary>
public static class GgmlTypeInfo
{
    /// <summary>Elements per block and bytes per block of <paramref name="type"/>.</summary>
    public static (int BlockElements, int BlockBytes) Block(GgmlType type) => type switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.BF16 => (1, 2),
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        GgmlType.IQ4_NL => (32, 18),
        _ => throw new NotSupportedException($"ggml type {type} is not supported by MiniOmni.SK."),
    };

    /// <summary>Bytes that <paramref name="elementCount"/> elements of <paramref name="type"/> take.</summary>
    public static long ByteSize(GgmlType type, long elementCount)
    {
        var (blockElements, blockBytes) = Block(type);
        if (elementCount % blockElements != 0)
        {
            throw new ArgumentException($"{elementCount} elements do not fill whole {type} blocks of {blockElements}.");
        }

        return elementCount / blockElements * blockBytes;
    }
}
