using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MiniOmni.SK.Native;

/// <summary>
/// Elementwise chains that ggml's CPU backend runs as one custom op each, added by <see cref="GgmlGraphBuilder"/>.
/// Composed of ggml's own ops, such a chain passes over a large activation once per op (each pass a trip through
/// memory and a barrier of every thread), and ggml's CPU <c>sin</c> is scalar <c>sinf</c>; fused, each tile of rows
/// stays in L1 while System.Numerics.Tensors' vectorized primitives run over it. Other backends compose the same math
/// from ggml ops, so a GPU still runs every stage.
/// </summary>
/// <remarks>
/// Each kernel is a <c>ggml_custom_op_t</c>: ggml calls it on each of its <c>nth</c> worker threads, which takes its
/// share of rows, and the kernel reads its operands from the destination's sources. Kernels must not throw (an
/// exception cannot cross back into native code): every shape is checked when the op is added to a graph.
/// </remarks>
internal static unsafe class FusedCpuKernels
{
    // Rows are taken in tiles of about this many elements: per-channel parameters are laid out once per tile and every
    // primitive below works on data already in L1.
    private const int TileElements = 2048;

    // Scratch tiles: per-channel parameters repeated across a tile, and the work tile.
    private const int ScratchTiles = 4;

    [ThreadStatic]
    private static float[]? t_scratch;

    /// <summary>
    /// Snake over [channels, rows], of <c>y = x + bias</c> when a bias is given: <c>y + reciprocal * sin(alpha * y)^2</c>,
    /// with <c>alpha</c>, <c>reciprocal</c> (1 / (alpha + 1e-9)) and <c>bias</c> one value per channel.
    /// Sources: x, alpha, reciprocal, and optionally bias.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static void Snake(IntPtr destination, int ith, int nth, IntPtr userData)
    {
        var dst = new GgmlTensor(destination);
        var x = dst.Source(0);
        int channels = (int)x.Ne0;
        var (first, end) = ShareOf(x.ElementCount / channels, ith, nth);
        var tiles = new ChannelTiles(channels);
        var alpha = tiles.Repeat(0, dst.Source(1));
        var reciprocal = tiles.Repeat(1, dst.Source(2));
        var biases = dst.HasSource(3) ? tiles.Repeat(2, dst.Source(3)) : default;
        var work = tiles.Work;
        float* source = Data(x), target = Data(dst);
        for (long row = first; row < end; row += tiles.Rows)
        {
            int length = (int)(Math.Min(tiles.Rows, end - row) * channels);
            ReadOnlySpan<float> values = new(source + row * channels, length);
            var output = new Span<float>(target + row * channels, length);
            if (!biases.IsEmpty)
            {
                // The biased input goes to the output row first; the output is written last, from it, element by element.
                TensorPrimitives.Add(values, biases[..length], output);
                values = output;
            }

            var sine = work[..length];
            TensorPrimitives.Multiply(values, alpha[..length], sine);
            TensorPrimitives.Sin(sine, sine);
            TensorPrimitives.Multiply(sine, sine, sine);
            TensorPrimitives.FusedMultiplyAdd(sine, reciprocal[..length], values, output);
        }
    }

    /// <summary>
    /// <c>x + y + bias</c> over [channels, rows], <c>bias</c> one value per channel (a residual connection around a
    /// biased product). Sources: x, y, bias.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static void AddWithBias(IntPtr destination, int ith, int nth, IntPtr userData)
    {
        var dst = new GgmlTensor(destination);
        var x = dst.Source(0);
        int channels = (int)x.Ne0;
        var (first, end) = ShareOf(x.ElementCount / channels, ith, nth);
        var tiles = new ChannelTiles(channels);
        var bias = tiles.Repeat(0, dst.Source(2));
        float* left = Data(x), right = Data(dst.Source(1)), target = Data(dst);
        for (long row = first; row < end; row += tiles.Rows)
        {
            int length = (int)(Math.Min(tiles.Rows, end - row) * channels);
            long offset = row * channels;
            var output = new Span<float>(target + offset, length);
            TensorPrimitives.Add(new ReadOnlySpan<float>(left + offset, length), new ReadOnlySpan<float>(right + offset, length), output);
            TensorPrimitives.Add(output, bias[..length], output);
        }
    }

    /// <summary>
    /// The overlap-add of a transposed convolution whose kernel is twice its stride. Source 0 holds, for each input
    /// step t, the 2 * stride output rows it touches ([channels * 2 * stride, steps], tap-major); the full result's row
    /// j sums tap j - t * stride of steps t = j / stride and j / stride - 1. Output row i is full row i + offset
    /// (<paramref name="userData"/>, the convolution's cropping), plus source 1, a bias per channel.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static void OverlapAdd(IntPtr destination, int ith, int nth, IntPtr userData)
    {
        var dst = new GgmlTensor(destination);
        var contributions = dst.Source(0);
        var biasTensor = dst.Source(1);
        int channels = (int)dst.Ne0;
        long steps = contributions.Ne1;
        long stride = contributions.Ne0 / (2 * channels);
        long offset = userData;
        ReadOnlySpan<float> bias = new(Data(biasTensor), channels);
        float* source = Data(contributions), target = Data(dst);
        long rowLength = contributions.Ne0;
        var (first, end) = ShareOf(dst.Ne1, ith, nth);
        for (long row = first; row < end; row++)
        {
            long full = row + offset, step = full / stride, tap = full % stride;
            var output = new Span<float>(target + row * channels, channels);
            bias.CopyTo(output);
            if (step < steps)
            {
                TensorPrimitives.Add(output, new ReadOnlySpan<float>(source + step * rowLength + tap * channels, channels), output);
            }

            if (step >= 1 && step - 1 < steps)
            {
                TensorPrimitives.Add(output, new ReadOnlySpan<float>(source + (step - 1) * rowLength + (stride + tap) * channels, channels), output);
            }
        }
    }

    /// <summary>
    /// A depthwise convolution along time of [channels, steps] source 0 with source 1's taps, [channels, kernel]: output
    /// row t sums tap row k times input row <c>t + k * dilation - padding</c>, zero past either end
    /// (<paramref name="userData"/> packs dilation and padding, see <see cref="PackDepthwise"/>).
    /// </summary>
    /// <remarks>
    /// ggml's own depthwise op splits its work by image rows, and a sequence is one row: one thread ran it all while the
    /// other waited. Here each thread takes a share of the output steps, and each vector of channels sums its taps in a
    /// register.
    /// </remarks>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static void DepthwiseConvolution(IntPtr destination, int ith, int nth, IntPtr userData)
    {
        var dst = new GgmlTensor(destination);
        var x = dst.Source(0);
        var taps = dst.Source(1);
        int channels = (int)x.Ne0, kernel = (int)taps.Ne1;
        long steps = x.Ne1;
        var (dilation, padding) = UnpackDepthwise(userData);
        float* source = Data(x), weights = Data(taps), target = Data(dst);
        int vectorEnd = channels - channels % Vector256<float>.Count;
        var (first, end) = ShareOf(dst.Ne1, ith, nth);
        for (long row = first; row < end; row++)
        {
            // The taps that land inside the input: k with 0 <= row + k * dilation - padding < steps.
            long start = row - padding;
            int firstTap = start >= 0 ? 0 : (int)((-start + dilation - 1) / dilation);
            int endTap = (int)Math.Min(kernel, start >= steps ? 0 : (steps - 1 - start) / dilation + 1);
            float* output = target + row * channels;
            for (int c = 0; c < vectorEnd; c += Vector256<float>.Count)
            {
                var sum = Vector256<float>.Zero;
                for (int k = firstTap; k < endTap; k++)
                {
                    sum = Vector256.FusedMultiplyAdd(Vector256.Load(weights + k * channels + c), Vector256.Load(source + (start + k * dilation) * channels + c), sum);
                }

                sum.Store(output + c);
            }

            for (int c = vectorEnd; c < channels; c++)
            {
                float sum = 0f;
                for (int k = firstTap; k < endTap; k++)
                {
                    sum = MathF.FusedMultiplyAdd(weights[k * channels + c], source[(start + k * dilation) * channels + c], sum);
                }

                output[c] = sum;
            }
        }
    }

    /// <summary>The <c>userData</c> of <see cref="DepthwiseConvolution"/>: dilation and padding, each below 65536.</summary>
    public static nint PackDepthwise(int dilation, int padding) =>
        dilation is > 0 and < 65536 && padding is >= 0 and < 65536
            ? (nint)(dilation | (padding << 16))
            : throw new ArgumentOutOfRangeException(nameof(dilation), $"A fused depthwise convolution takes dilation 1..65535 and padding 0..65535; got {dilation} and {padding}.");

    private static (int Dilation, int Padding) UnpackDepthwise(nint userData) => ((int)(userData & 0xFFFF), (int)((userData >> 16) & 0xFFFF));

    private static (long First, long End) ShareOf(long rows, int ith, int nth) => (rows * ith / nth, rows * (ith + 1) / nth);

    private static float* Data(GgmlTensor tensor) => (float*)GgmlNative.ggml_get_data(tensor.Handle);

    /// <summary>This thread's scratch, cut into tiles of whole rows of <c>channels</c>.</summary>
    private readonly ref struct ChannelTiles
    {
        private readonly Span<float> _scratch;
        private readonly int _channels;

        public ChannelTiles(int channels)
        {
            _channels = channels;
            Rows = Math.Max(1, TileElements / channels);
            Length = Rows * channels;
            var scratch = t_scratch;
            if (scratch is null || scratch.Length < ScratchTiles * Length)
            {
                t_scratch = scratch = new float[ScratchTiles * Math.Max(Length, TileElements)];
            }

            _scratch = scratch;
        }

        /// <summary>Rows per tile.</summary>
        public int Rows { get; }

        /// <summary>Elements per tile.</summary>
        public int Length { get; }

        /// <summary>The tile the kernel computes in.</summary>
        public Span<float> Work => _scratch.Slice((ScratchTiles - 1) * Length, Length);

        /// <summary>Scratch tile <paramref name="slot"/> filled with <paramref name="perChannel"/>'s values, row after row.</summary>
        public Span<float> Repeat(int slot, GgmlTensor perChannel)
        {
            var tile = _scratch.Slice(slot * Length, Length);
            ReadOnlySpan<float> values = new(Data(perChannel), _channels);
            for (int offset = 0; offset < Length; offset += _channels)
            {
                values.CopyTo(tile[offset..]);
            }

            return tile;
        }
    }
}
