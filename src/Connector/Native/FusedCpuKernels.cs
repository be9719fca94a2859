using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MiniOmni.SK.Native;

/// <summary>
/// Chains of ops that ggml's CPU backend runs as one custom op each, added by <see cref="GgmlGraphBuilder"/>.
/// Composed of ggml's own ops, such a chain passes over a large activation once per op (each pass a trip through
/// memory and a barrier of every thread), ggml's CPU <c>sin</c> is scalar <c>sinf</c>, and its depthwise convolution
/// of a sequence runs on one thread; fused, each thread takes a share of the rows and works through them with vector
/// instructions. Other backends compose the same math from ggml ops, so a GPU still runs every stage.
/// </summary>
/// <remarks>
/// Each kernel is a <c>ggml_custom_op_t</c>: ggml calls it on each of its <c>nth</c> worker threads, which takes its
/// share of rows, and the kernel reads its operands from the destination's sources. Kernels must not throw (an
/// exception cannot cross back into native code): every shape is checked when the op is added to a graph.
/// </remarks>
internal static unsafe class FusedCpuKernels
{
    // AddWithBias takes rows in tiles of about this many elements: the bias is laid out once per tile, and
    // System.Numerics.Tensors' primitives run over whole tiles rather than one row of channels at a time.
    private const int TileElements = 2048;

    [ThreadStatic]
    private static float[]? t_biasTile;

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
        float* bias = dst.HasSource(3) ? Data(dst.Source(3)) : null;
        SnakeRows(Data(x) + first * channels, Data(dst) + first * channels, end - first, channels, Data(dst.Source(1)), Data(dst.Source(2)), bias);
    }

    /// <summary>
    /// Snake over <paramref name="rows"/> rows of <paramref name="channels"/>: <c>y + reciprocal * sin(alpha * y)^2</c> of
    /// <c>y = input + bias</c> (or input), the parameters one value per channel. <paramref name="output"/> may be
    /// <paramref name="input"/>.
    /// </summary>
    private static void SnakeRows(float* input, float* output, long rows, int channels, float* alpha, float* reciprocal, float* bias)
    {
        int vectorEnd = Vector.IsHardwareAccelerated ? channels - channels % Vector<float>.Count : 0;
        for (long row = 0; row < rows; row++)
        {
            float* values = input + row * channels, results = output + row * channels;
            for (int c = 0; c < vectorEnd; c += Vector<float>.Count)
            {
                var value = Vector.Load(values + c);
                if (bias is not null)
                {
                    value += Vector.Load(bias + c);
                }

                var angle = value * Vector.Load(alpha + c);
                if (Vector.GreaterThanAny(Vector.Abs(angle), new Vector<float>(SineSquaredReach)))
                {
                    // Past the reduction's reach: the exact path, element by element.
                    for (int j = c; j < c + Vector<float>.Count; j++)
                    {
                        results[j] = SnakeOf(values[j] + (bias is null ? 0f : bias[j]), alpha[j], reciprocal[j]);
                    }

                    continue;
                }

                Vector.FusedMultiplyAdd(SineSquared(angle), Vector.Load(reciprocal + c), value).Store(results + c);
            }

            for (int c = vectorEnd; c < channels; c++)
            {
                results[c] = SnakeOf(values[c] + (bias is null ? 0f : bias[c]), alpha[c], reciprocal[c]);
            }
        }
    }

    private static float SnakeOf(float y, float alpha, float reciprocal)
    {
        float sine = MathF.Sin(alpha * y);
        return MathF.FusedMultiplyAdd(sine * sine, reciprocal, y);
    }

    // sin(a)^2 in single precision, a vector at a time. TensorPrimitives.Sin widens floats to double (about 1 ns an
    // element here, most of a codec Snake's time); this takes about a fifth of that. a = n * pi / 2 + r with |r| <= pi / 4 (pi / 2 split in three so that
    // n * pi / 2 is exact to well past single precision for |n| < 2^12); sin(a)^2 is sin(r)^2 for even n and cos(r)^2 for
    // odd n. The polynomials are the minimax fits of sin and cos on [-pi / 4, pi / 4] to single precision (Cephes' sinf
    // and cosf), so the result is within a few ulp of sinf's.
    private const float SineSquaredReach = 6000f;
    private const float TwoOverPi = 0.636619772367581343f;
    private const float HalfPiHigh = 1.5703125f;
    private const float HalfPiMiddle = 4.837512969970703125e-4f;
    private const float HalfPiLow = 7.54978995489188216e-8f;

    private static Vector<float> SineSquared(Vector<float> angle)
    {
        var quadrant = Vector.Round(angle * new Vector<float>(TwoOverPi));
        var r = Vector.FusedMultiplyAdd(quadrant, new Vector<float>(-HalfPiHigh), angle);
        r = Vector.FusedMultiplyAdd(quadrant, new Vector<float>(-HalfPiMiddle), r);
        r = Vector.FusedMultiplyAdd(quadrant, new Vector<float>(-HalfPiLow), r);
        var r2 = r * r;
        var sinePolynomial = Vector.FusedMultiplyAdd(Vector.FusedMultiplyAdd(r2, new Vector<float>(-1.9515295891e-4f), new Vector<float>(8.3321608736e-3f)), r2, new Vector<float>(-1.6666654611e-1f));
        var sine = Vector.FusedMultiplyAdd(sinePolynomial * r2, r, r);
        var cosinePolynomial = Vector.FusedMultiplyAdd(Vector.FusedMultiplyAdd(r2, new Vector<float>(2.443315711809948e-5f), new Vector<float>(-1.388731625493765e-3f)), r2, new Vector<float>(4.166664568298827e-2f));
        var cosine = Vector.FusedMultiplyAdd(cosinePolynomial * r2, r2, Vector.FusedMultiplyAdd(r2, new Vector<float>(-0.5f), Vector<float>.One));
        var odd = Vector.Equals(Vector.ConvertToInt32(quadrant) & Vector<int>.One, Vector<int>.One);
        var value = Vector.ConditionalSelect(odd, cosine, sine);
        return value * value;
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
        var bias = tiles.Repeat(dst.Source(2));
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
        var (first, end) = ShareOf(dst.Ne1, ith, nth);
        for (long row = first; row < end; row++)
        {
            // The taps that land inside the input: k with 0 <= row + k * dilation - padding < steps.
            long start = row - padding;
            int firstTap = start >= 0 ? 0 : (int)((-start + dilation - 1) / dilation);
            int endTap = (int)Math.Min(kernel, start >= steps ? 0 : (steps - 1 - start) / dilation + 1);
            ConvolveStep(source + start * channels, weights, channels, dilation, firstTap, endTap, target + row * channels);
        }
    }

    // output = the sum over taps k in [firstTap, endTap) of tap row k times row k * dilation of input (channels each).
    private static void ConvolveStep(float* input, float* taps, int channels, int dilation, int firstTap, int endTap, float* output)
    {
        int vectorEnd = channels - channels % Vector<float>.Count;
        for (int c = 0; c < vectorEnd; c += Vector<float>.Count)
        {
            var sum = Vector<float>.Zero;
            for (int k = firstTap; k < endTap; k++)
            {
                sum = Vector.FusedMultiplyAdd(Vector.Load(taps + k * channels + c), Vector.Load(input + (long)k * dilation * channels + c), sum);
            }

            sum.Store(output + c);
        }

        for (int c = vectorEnd; c < channels; c++)
        {
            float sum = 0f;
            for (int k = firstTap; k < endTap; k++)
            {
                sum = MathF.FusedMultiplyAdd(taps[k * channels + c], input[(long)k * dilation * channels + c], sum);
            }

            output[c] = sum;
        }
    }

    /// <summary>
    /// A convolution of [channels, steps] source 0 to one output channel with "same" padding: source 1 holds the taps,
    /// [channels, kernel], and output step t sums tap row k dotted with input row t + k - (kernel - 1) / 2, zero past
    /// either end, plus source 2, the bias.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static void ConvolutionToOneChannel(IntPtr destination, int ith, int nth, IntPtr userData)
    {
        var dst = new GgmlTensor(destination);
        var x = dst.Source(0);
        var taps = dst.Source(1);
        int channels = (int)x.Ne0, kernel = (int)taps.Ne1, half = kernel / 2;
        long steps = x.Ne1;
        float bias = *Data(dst.Source(2));
        float* source = Data(x), weights = Data(taps), target = Data(dst);
        int vectorEnd = channels - channels % Vector<float>.Count;
        var (first, end) = ShareOf(steps, ith, nth);
        for (long step = first; step < end; step++)
        {
            int firstTap = (int)Math.Max(0, half - step), endTap = (int)Math.Min(kernel, steps - step + half);
            var sums = Vector<float>.Zero;
            float sum = bias;
            for (int k = firstTap; k < endTap; k++)
            {
                float* row = source + (step + k - half) * channels, tap = weights + k * channels;
                for (int c = 0; c < vectorEnd; c += Vector<float>.Count)
                {
                    sums = Vector.FusedMultiplyAdd(Vector.Load(tap + c), Vector.Load(row + c), sums);
                }

                for (int c = vectorEnd; c < channels; c++)
                {
                    sum = MathF.FusedMultiplyAdd(tap[c], row[c], sum);
                }
            }

            target[step] = sum + Vector.Sum(sums);
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

    /// <summary>A tile of whole rows of <c>channels</c> in this thread's scratch.</summary>
    private readonly ref struct ChannelTiles
    {
        private readonly Span<float> _tile;
        private readonly int _channels;

        public ChannelTiles(int channels)
        {
            _channels = channels;
            Rows = Math.Max(1, TileElements / channels);
            int length = Rows * channels;
            var scratch = t_biasTile;
            if (scratch is null || scratch.Length < length)
            {
                t_biasTile = scratch = new float[Math.Max(length, TileElements)];
            }

            _tile = scratch.AsSpan(0, length);
        }

        /// <summary>Rows per tile.</summary>
        public int Rows { get; }

        /// <summary>The tile filled with <paramref name="perChannel"/>'s values, row after row.</summary>
        public Span<float> Repeat(GgmlTensor perChannel)
        {
            ReadOnlySpan<float> values = new(Data(perChannel), _channels);
            for (int offset = 0; offset < _tile.Length; offset += _channels)
            {
                values.CopyTo(_tile[offset..]);
            }

            return _tile;
        }
    }
}
