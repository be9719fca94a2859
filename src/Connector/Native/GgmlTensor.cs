using System.Runtime.InteropServices;

namespace MiniOmni.SK.Native;

/// <summary>A tensor of a ggml context, with its shape read from the native struct (offset pinned by the ABI tests).</summary>
internal readonly struct GgmlTensor
{
    public GgmlTensor(IntPtr handle)
    {
        if (handle == IntPtr.Zero)
        {
            throw new InvalidOperationException("ggml returned no tensor (the context is out of metadata space).");
        }

        Handle = handle;
    }

    /// <summary>The native <c>ggml_tensor*</c>.</summary>
    public IntPtr Handle { get; }

    /// <summary>Elements along dimension 0 (innermost).</summary>
    public long Ne0 => Ne(0);

    /// <summary>Elements along dimension 1.</summary>
    public long Ne1 => Ne(1);

    /// <summary>Elements along dimension 2.</summary>
    public long Ne2 => Ne(2);

    /// <summary>Elements along dimension 3.</summary>
    public long Ne3 => Ne(3);

    /// <summary>The element type.</summary>
    public GgmlElementType Type => (GgmlElementType)Marshal.ReadInt32(Handle);

    /// <summary>All four dimensions, innermost first.</summary>
    public long[] Shape => [Ne0, Ne1, Ne2, Ne3];

    /// <summary>The number of elements.</summary>
    public long ElementCount => Ne0 * Ne1 * Ne2 * Ne3;

    /// <summary>Elements along dimension <paramref name="dimension"/>.</summary>
    public long Ne(int dimension) => Marshal.ReadInt64(Handle, GgmlNative.TensorShapeOffset + 8 * dimension);

    /// <summary>Stride in bytes of dimension <paramref name="dimension"/>.</summary>
    public long Nb(int dimension) => Marshal.ReadInt64(Handle, GgmlNative.TensorStrideOffset + 8 * dimension);

    /// <summary>Whether the tensor has memory in a backend buffer (the <c>buffer</c> pointer, after the type).</summary>
    public bool IsAllocated => Marshal.ReadIntPtr(Handle, GgmlNative.TensorBufferOffset) != IntPtr.Zero;

    /// <summary>Whether operand <paramref name="index"/> of the op that computes this tensor is set.</summary>
    public bool HasSource(int index) => SourceHandle(index) != IntPtr.Zero;

    /// <summary>Operand <paramref name="index"/> of the op that computes this tensor (custom ops read theirs so).</summary>
    public GgmlTensor Source(int index) => new(SourceHandle(index));

    /// <summary>Whether the type stores blocks of quantized values (Q8_0, Q4_0, IQ4_NL), usable as mul_mat weights only.</summary>
    public bool IsQuantized => Type is GgmlElementType.Q8_0 or GgmlElementType.Q4_0 or GgmlElementType.IQ4_NL;

    /// <summary>Bytes per element (F32 and I32: 4, F16: 2); block types are never viewed element-wise.</summary>
    public int ElementSize => IsQuantized
        ? throw new InvalidOperationException($"{Type} tensors have no per-element size; use them as mul_mat weights only.")
        : Type == GgmlElementType.F16 ? 2 : 4;

    /// <summary>Whether the elements lie densely in row-major order (what reshapes and most unary ops need).</summary>
    public bool IsContiguous => IsQuantized || Nb(0) == ElementSize && Nb(1) == Nb(0) * Ne0 && Nb(2) == Nb(1) * Ne1 && Nb(3) == Nb(2) * Ne2;

    private IntPtr SourceHandle(int index) => (uint)index < GgmlNative.MaxSources
        ? Marshal.ReadIntPtr(Handle, GgmlNative.TensorSourcesOffset + IntPtr.Size * index)
        : throw new ArgumentOutOfRangeException(nameof(index), index, $"ggml ops have at most {GgmlNative.MaxSources} operands.");

    /// <inheritdoc />
    public override string ToString() => $"[{Ne0}, {Ne1}, {Ne2}, {Ne3}] {Type}";
}
