namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>Element types an original checkpoint may store.</summary>
public enum SourceDType
{
    /// <summary>IEEE binary32.</summary>
    F32,
    /// <summary>IEEE binary16.</summary>
    F16,
    /// <summary>bfloat16 (the top half of a binary32).</summary>
    BF16,
}

/// <summary>A tensor of an original checkpoint; its data is read only when asked for.</summary>
public abstract class CheckpointTensor
{
    /// <summary>Creates the description of a tensor.</summary>
    protected CheckpointTensor(string name, string sourceFile, IReadOnlyList<long> shape, SourceDType dtype)
    {
        Name = name;
        SourceFile = sourceFile;
        Shape = shape;
        DType = dtype;
        ElementCount = shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>The name in the checkpoint (e.g. <c>transformer.h.0.attn.attn.weight</c>).</summary>
    public string Name { get; }

    /// <summary>The file the tensor comes from, for error messages.</summary>
    public string SourceFile { get; }

    /// <summary>PyTorch order: outermost dimension first.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The stored element type.</summary>
    public SourceDType DType { get; }

    /// <summary>The product of <see cref="Shape"/>.</summary>
    public long ElementCount { get; }

    /// <summary>Reads the tensor as contiguous row-major float32 (strides and storage offset applied).</summary>
    public abstract float[] ReadFloat32();

    /// <summary>Bytes per stored element.</summary>
    protected int ElementSize => DType == SourceDType.F32 ? 4 : 2;

    /// <summary>Decodes stored little-endian elements into float32.</summary>
    protected void Decode(ReadOnlySpan<byte> stored, Span<float> destination) =>
        Gguf.TensorEncoding.Decode(stored, DType switch
        {
            SourceDType.F32 => Gguf.GgmlType.F32,
            SourceDType.F16 => Gguf.GgmlType.F16,
            _ => Gguf.GgmlType.BF16,
        }, destination);
}
