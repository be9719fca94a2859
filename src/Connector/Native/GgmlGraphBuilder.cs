namespace MiniOmni.SK.Native;

/// <summary>
/// Builds one ggml graph. Every operation checks, in C#, the shapes ggml would otherwise assert on (an assert
/// aborts the whole process), and throws <see cref="ArgumentException"/> naming the operation and the shapes instead.
/// </summary>
internal sealed class GgmlGraphBuilder
{
    private readonly IntPtr _context;
    private readonly Dictionary<string, GgmlTensor> _inputs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GgmlTensor> _outputs = new(StringComparer.Ordinal);

    /// <param name="context">The context the graph's tensors are made in.</param>
    /// <param name="graph">The graph outputs are added to.</param>
    /// <param name="fusedCpuKernels">Whether the graph runs on the CPU backend alone, where chains such as Snake run as one <see cref="FusedCpuKernels"/> op each.</param>
    public GgmlGraphBuilder(SafeGgmlContextHandle context, IntPtr graph, bool fusedCpuKernels = false)
    {
        _context = context.DangerousGetHandle();
        Graph = graph;
        FusedCpuKernels = fusedCpuKernels;
    }

    /// <summary>Whether elementwise chains run as one fused CPU op (<see cref="Native.FusedCpuKernels"/>) rather than ggml ops any backend runs.</summary>
    public bool FusedCpuKernels { get; }

    /// <summary>The native <c>ggml_cgraph*</c>.</summary>
    public IntPtr Graph { get; }

    /// <summary>Inputs declared so far, by name.</summary>
    public IReadOnlyDictionary<string, GgmlTensor> Inputs => _inputs;

    /// <summary>Outputs marked so far, by name.</summary>
    public IReadOnlyDictionary<string, GgmlTensor> Outputs => _outputs;

    /// <summary>Declares a named input of shape [ne0, ne1, ne2, ne3] (innermost first).</summary>
    public GgmlTensor Input(string name, GgmlElementType type, long ne0, long ne1 = 1, long ne2 = 1, long ne3 = 1)
    {
        if (ne0 <= 0 || ne1 <= 0 || ne2 <= 0 || ne3 <= 0)
        {
            throw new ArgumentException($"Input '{name}' has a non-positive dimension [{ne0}, {ne1}, {ne2}, {ne3}].");
        }

        var tensor = new GgmlTensor(GgmlNative.ggml_new_tensor_4d(_context, type, ne0, ne1, ne2, ne3));
        GgmlNative.ggml_set_name(tensor.Handle, CheckName(name));
        GgmlNative.ggml_set_input(tensor.Handle);
        _inputs.Add(name, tensor);
        return tensor;
    }

    /// <summary>Marks <paramref name="tensor"/> as an output named <paramref name="name"/> and adds it to the graph.</summary>
    public GgmlTensor Output(string name, GgmlTensor tensor)
    {
        GgmlNative.ggml_set_name(tensor.Handle, CheckName(name));
        GgmlNative.ggml_set_output(tensor.Handle);
        GgmlNative.ggml_build_forward_expand(Graph, tensor.Handle);
        _outputs.Add(name, tensor);
        return tensor;
    }

    /// <summary>a^T b over dimension 0: [K, M] x [K, N] -> [M, N] (batched over dims 2 and 3 by broadcasting a).</summary>
    public GgmlTensor MulMat(GgmlTensor a, GgmlTensor b)
    {
        Require(a.Ne0 == b.Ne0 && b.Ne2 % a.Ne2 == 0 && b.Ne3 % a.Ne3 == 0, "mul_mat", a, b);
        Require(b.Type == GgmlElementType.F32, "mul_mat (b must be F32)", a, b);
        return New(GgmlNative.ggml_mul_mat(_context, a.Handle, b.Handle));
    }

    /// <summary>a + b, b broadcast along any dimension where it has size dividing a's.</summary>
    public GgmlTensor Add(GgmlTensor a, GgmlTensor b) => New(GgmlNative.ggml_add(_context, a.Handle, Broadcastable(a, b, "add").Handle));

    /// <summary>a * b elementwise, b broadcast.</summary>
    public GgmlTensor Mul(GgmlTensor a, GgmlTensor b) => New(GgmlNative.ggml_mul(_context, a.Handle, Broadcastable(a, b, "mul").Handle));

    /// <summary>a / b elementwise, b broadcast.</summary>
    public GgmlTensor Div(GgmlTensor a, GgmlTensor b) => New(GgmlNative.ggml_div(_context, a.Handle, Broadcastable(a, b, "div").Handle));

    /// <summary>a * s.</summary>
    public GgmlTensor Scale(GgmlTensor a, float s) => New(GgmlNative.ggml_scale(_context, Dense(a, "scale").Handle, s));

    /// <summary>Normalises each row (dimension 0) to zero mean and unit variance; a LayerNorm without its affine part.</summary>
    public GgmlTensor Norm(GgmlTensor a, float epsilon) => New(GgmlNative.ggml_norm(_context, Dense(a, "norm").Handle, epsilon));

    /// <summary>Exact (erf) GELU, as PyTorch's nn.GELU() and Whisper compute it.</summary>
    public GgmlTensor GeluErf(GgmlTensor a) => New(GgmlNative.ggml_gelu_erf(_context, Dense(a, "gelu_erf").Handle));

    /// <summary>x * sigmoid(x).</summary>
    public GgmlTensor Silu(GgmlTensor a) => New(GgmlNative.ggml_silu(_context, Dense(a, "silu").Handle));

    /// <summary>sin(x).</summary>
    public GgmlTensor Sin(GgmlTensor a) => New(GgmlNative.ggml_sin(_context, Dense(a, "sin").Handle));

    /// <summary>x squared.</summary>
    public GgmlTensor Sqr(GgmlTensor a) => New(GgmlNative.ggml_sqr(_context, Dense(a, "sqr").Handle));

    /// <summary>tanh(x).</summary>
    public GgmlTensor Tanh(GgmlTensor a) => New(GgmlNative.ggml_tanh(_context, Dense(a, "tanh").Handle));

    /// <summary>
    /// Snake, <c>y + sin(alpha * y)^2 / (alpha + 1e-9)</c> of <c>y = x + bias</c> (or x), over <paramref name="x"/>
    /// [channels, time] with one <paramref name="alpha"/>, <paramref name="reciprocal"/> (1 / (alpha + 1e-9)) and
    /// <paramref name="bias"/> per channel: one fused op on the CPU backend, up to six ggml ops elsewhere.
    /// </summary>
    public unsafe GgmlTensor Snake(GgmlTensor x, GgmlTensor alpha, GgmlTensor reciprocal, GgmlTensor? bias = null)
    {
        bool fits = IsChannelsByTime(x) && IsPerChannel(alpha, x) && IsPerChannel(reciprocal, x) && (bias is null || IsPerChannel(bias.Value, x));
        Require(fits, "snake (one alpha, reciprocal and bias per channel of dense F32)", x, alpha);
        if (FusedCpuKernels)
        {
            return Custom(x.Ne0, x.Ne1, bias is { } b ? [x, alpha, reciprocal, b] : [x, alpha, reciprocal], &Native.FusedCpuKernels.Snake);
        }

        var input = bias is { } added ? Add(x, Reshape(added, x.Ne0, 1)) : x;
        var sine = Sqr(Sin(Mul(input, Reshape(alpha, x.Ne0, 1))));
        return Add(input, Mul(sine, Reshape(reciprocal, x.Ne0, 1)));
    }

    /// <summary>
    /// <c>x + y + bias</c> over [channels, time], <paramref name="bias"/> one value per channel: a residual connection
    /// around a biased product, one pass on the CPU backend.
    /// </summary>
    public unsafe GgmlTensor AddWithBias(GgmlTensor x, GgmlTensor y, GgmlTensor bias)
    {
        bool fits = IsChannelsByTime(x) && IsDenseF32(y) && x.Shape.SequenceEqual(y.Shape) && IsPerChannel(bias, x);
        Require(fits, "add with bias (x and y alike, one bias per channel)", x, y);
        return FusedCpuKernels
            ? Custom(x.Ne0, x.Ne1, [x, y, bias], &Native.FusedCpuKernels.AddWithBias)
            : Add(x, Add(y, Reshape(bias, x.Ne0, 1)));
    }

    /// <summary>
    /// A transposed convolution whose kernel spans two strides, on [in, steps] <paramref name="x"/>:
    /// <paramref name="taps"/> is [in, outputs * 2 * <paramref name="stride"/>], row (k, o) holding tap k of output
    /// channel o, so one product gives every output row each input step touches, and the overlap-add sums two of them
    /// per output row. The full result has (steps + 1) * stride rows; this returns <paramref name="length"/> of them
    /// from row <paramref name="first"/> (PyTorch's padding), plus <paramref name="bias"/>: [outputs, length].
    /// </summary>
    public unsafe GgmlTensor TransposedConvolution(GgmlTensor x, GgmlTensor taps, int stride, long first, long length, GgmlTensor bias)
    {
        long outputs = stride > 0 ? taps.Ne1 / (2 * stride) : 0;
        bool fits = IsChannelsByTime(x) && taps.Ne0 == x.Ne0 && stride > 0 && outputs > 0 && taps.Ne1 == outputs * 2 * stride
            && IsDenseF32(bias) && bias.ElementCount == outputs && first >= 0 && length > 0 && first + length <= (x.Ne1 + 1) * stride;
        Require(fits, $"transposed convolution (stride {stride}, rows [{first}, {first + length}))", x, taps);
        if (FusedCpuKernels)
        {
            return Custom(outputs, length, [MulMat(taps, x), bias], &Native.FusedCpuKernels.OverlapAdd, (nint)first);
        }

        // A zero step each side of the (small) input makes both halves of the overlap-add views of one product.
        var widened = PadRows(x, 1, 1);
        var contributions = MulMat(taps, widened); // [outputs * 2 * stride, steps + 2]
        long blocks = widened.Ne1 - 1;
        long rowBytes = contributions.Nb(1);
        var own = View(contributions, outputs, stride, blocks, outputs * 4, rowBytes, rowBytes);
        var previous = View(contributions, outputs, stride, blocks, outputs * 4, rowBytes, outputs * stride * 4);
        var full = Reshape(Add(own, previous), outputs, blocks * stride);
        return Add(Rows(full, first, length), Reshape(bias, outputs, 1));
    }

    /// <summary>Softmax over dimension 0 of a * scale (no mask).</summary>
    public GgmlTensor SoftMax(GgmlTensor a, float scale) => New(GgmlNative.ggml_soft_max_ext(_context, Dense(a, "soft_max").Handle, IntPtr.Zero, scale, 0f));

    /// <summary>
    /// Fused attention softmax(q k^T * scale) v without a mask. q is [head size, queries, heads] F32; k and v are
    /// [head size, keys, heads] F16. Returns [head size, heads, queries]: rows already merged per query.
    /// </summary>
    public GgmlTensor FlashAttention(GgmlTensor q, GgmlTensor k, GgmlTensor v, float scale)
    {
        bool fits = q.Type == GgmlElementType.F32 && k.Type == GgmlElementType.F16 && v.Type == GgmlElementType.F16
            && q.Ne0 == k.Ne0 && k.Ne1 == v.Ne1 && k.Ne2 == v.Ne2 && q.Ne2 % k.Ne2 == 0 && q.Ne3 == 1 && k.Ne3 == 1;
        Require(fits, "flash_attn_ext", q, k);
        return New(GgmlNative.ggml_flash_attn_ext(_context, q.Handle, k.Handle, v.Handle, IntPtr.Zero, scale, 0f, 0f));
    }

    /// <summary>a converted to <paramref name="type"/> (F32 or F16).</summary>
    public GgmlTensor Cast(GgmlTensor a, GgmlElementType type)
    {
        if (type is not (GgmlElementType.F32 or GgmlElementType.F16) || a.Type is not (GgmlElementType.F32 or GgmlElementType.F16))
        {
            throw new ArgumentException($"cast: {a} to {type} is not supported.");
        }

        return New(GgmlNative.ggml_cast(_context, a.Handle, type));
    }

    /// <summary>Moves dimension i of a to position axes[i].</summary>
    public GgmlTensor Permute(GgmlTensor a, int axis0, int axis1, int axis2, int axis3)
    {
        int[] axes = [axis0, axis1, axis2, axis3];
        if (axes.Distinct().Count() != 4 || axes.Any(x => x is < 0 or > 3))
        {
            throw new ArgumentException($"permute: axes ({string.Join(", ", axes)}) are not a permutation of 0..3.");
        }

        return New(GgmlNative.ggml_permute(_context, a.Handle, axis0, axis1, axis2, axis3));
    }

    /// <summary>Swaps dimensions 0 and 1 (a view).</summary>
    public GgmlTensor Transpose(GgmlTensor a) => New(GgmlNative.ggml_transpose(_context, a.Handle));

    /// <summary>A dense copy of a (possibly strided) view.</summary>
    public GgmlTensor Cont(GgmlTensor a) => New(GgmlNative.ggml_cont(_context, a.Handle));

    /// <summary>The same elements as [ne0, ne1].</summary>
    public GgmlTensor Reshape(GgmlTensor a, long ne0, long ne1)
    {
        RequireReshape(a, ne0 * ne1, [ne0, ne1]);
        return New(GgmlNative.ggml_reshape_2d(_context, a.Handle, ne0, ne1));
    }

    /// <summary>The same elements as [ne0, ne1, ne2].</summary>
    public GgmlTensor Reshape(GgmlTensor a, long ne0, long ne1, long ne2)
    {
        RequireReshape(a, ne0 * ne1 * ne2, [ne0, ne1, ne2]);
        return New(GgmlNative.ggml_reshape_3d(_context, a.Handle, ne0, ne1, ne2));
    }

    /// <summary>The same elements as [ne0, ne1, ne2, ne3].</summary>
    public GgmlTensor Reshape(GgmlTensor a, long ne0, long ne1, long ne2, long ne3)
    {
        RequireReshape(a, ne0 * ne1 * ne2 * ne3, [ne0, ne1, ne2, ne3]);
        return New(GgmlNative.ggml_reshape_4d(_context, a.Handle, ne0, ne1, ne2, ne3));
    }

    /// <summary>Columns [<paramref name="start"/>, start + <paramref name="length"/>) along dimension 0 of a 2-D tensor (a view).</summary>
    public GgmlTensor Columns(GgmlTensor a, long start, long length)
    {
        if (start < 0 || length <= 0 || start + length > a.Ne0 || a.Ne2 != 1 || a.Ne3 != 1)
        {
            throw new ArgumentException($"view: columns [{start}, {start + length}) are outside {a}.");
        }

        return New(GgmlNative.ggml_view_2d(_context, a.Handle, length, a.Ne1, (nuint)a.Nb(1), (nuint)(start * a.Nb(0))));
    }

    /// <summary>Rows [<paramref name="start"/>, start + <paramref name="length"/>) along dimension 1 of a 2-D tensor (a view).</summary>
    public GgmlTensor Rows(GgmlTensor a, long start, long length)
    {
        if (start < 0 || length <= 0 || start + length > a.Ne1 || a.Ne2 != 1 || a.Ne3 != 1)
        {
            throw new ArgumentException($"view: rows [{start}, {start + length}) are outside {a}.");
        }

        return New(GgmlNative.ggml_view_2d(_context, a.Handle, a.Ne0, length, (nuint)a.Nb(1), (nuint)(start * a.Nb(1))));
    }

    /// <summary>
    /// Depthwise convolution along dimension 1 of <paramref name="x"/> [channels, time] with <paramref name="taps"/>
    /// [channels, K] (tap k of channel c at k * channels + c), spaced <paramref name="dilation"/> apart, reading
    /// <paramref name="padding"/> zeros past each end: [channels, time + 2 * padding - (K - 1) * dilation]. On the CPU
    /// backend a fused op that every thread shares; elsewhere ggml's channels-last depthwise convolution read through
    /// permuted views, where K products and sums would each pass over the whole stream.
    /// </summary>
    public unsafe GgmlTensor DepthwiseConvolution(GgmlTensor x, GgmlTensor taps, int dilation, int padding = 0)
    {
        long outputLength = x.Ne1 + 2L * padding - (taps.Ne1 - 1) * dilation;
        bool fits = IsChannelsByTime(x) && IsTapsPerChannel(taps, x) && x.Ne0 > 1 && x.Ne1 >= 2 && outputLength >= 2
            && dilation is >= 1 and < 65536 && padding is >= 0 and < 65536;
        Require(fits, $"depthwise convolution (dilation {dilation}, padding {padding})", x, taps);
        if (FusedCpuKernels)
        {
            return Custom(x.Ne0, outputLength, [x, taps], &Native.FusedCpuKernels.DepthwiseConvolution, Native.FusedCpuKernels.PackDepthwise(dilation, padding));
        }

        // [C, T] seen as W = T, H = 1, C channels stored innermost; the kernel as KW = K, KH = 1, one per channel.
        var channelsLast = GgmlNative.ggml_permute(_context, x.Handle, 2, 0, 1, 3);
        var kernel = GgmlNative.ggml_permute(_context, GgmlNative.ggml_reshape_4d(_context, taps.Handle, taps.Ne0, 1, taps.Ne1, 1), 3, 2, 0, 1);
        var convolved = GgmlNative.ggml_conv_2d_dw_direct(_context, kernel, channelsLast, 1, 1, padding, 0, dilation, 1);
        return New(GgmlNative.ggml_permute(_context, convolved, 1, 2, 0, 3));
    }

    /// <summary>
    /// A convolution of <paramref name="x"/> [channels, time] to one output channel with "same" padding:
    /// <paramref name="taps"/> is [channels, K] (K odd, tap k of channel c at k * channels + c) and output step t sums
    /// tap k times input step t + k - (K - 1) / 2, zero past either end, plus the scalar <paramref name="bias"/>:
    /// [1, time]. One fused op on the CPU backend; elsewhere one product gives every tap's term at every step,
    /// [K, time], and output t sums K strided views of it.
    /// </summary>
    public unsafe GgmlTensor ConvolutionToOneChannel(GgmlTensor x, GgmlTensor taps, GgmlTensor bias)
    {
        long kernel = taps.Ne1;
        bool fits = IsChannelsByTime(x) && IsTapsPerChannel(taps, x) && kernel % 2 == 1 && IsDenseF32(bias) && bias.ElementCount == 1;
        Require(fits, "convolution to one channel (an odd kernel over every channel, one bias)", x, taps);
        if (FusedCpuKernels)
        {
            return Custom(1, x.Ne1, [x, taps, bias], &Native.FusedCpuKernels.ConvolutionToOneChannel);
        }

        int half = (int)(kernel / 2);
        long length = x.Ne1;
        var terms = PadRows(MulMat(taps, x), half, half);
        GgmlTensor? sum = null;
        for (int k = 0; k < kernel; k++)
        {
            var term = View(terms, 1, length, 1, terms.Nb(1), terms.Nb(1) * length, k * (terms.Nb(1) + terms.Nb(0)));
            sum = sum is null ? Cont(term) : Add(sum.Value, term);
        }

        return Add(Reshape(sum!.Value, 1, length), bias);
    }

    /// <summary>a and b joined along <paramref name="dimension"/>; every other dimension must agree.</summary>
    public GgmlTensor Concat(GgmlTensor a, GgmlTensor b, int dimension)
    {
        bool fits = a.Type == b.Type && Enumerable.Range(0, 4).All(d => d == dimension || a.Ne(d) == b.Ne(d));
        Require(fits && dimension is >= 0 and < 4, $"concat along {dimension}", a, b);
        return New(GgmlNative.ggml_concat(_context, a.Handle, b.Handle, dimension));
    }

    /// <summary>Zero padding: <paramref name="left"/> and <paramref name="right"/> elements along dimension 0.</summary>
    public GgmlTensor PadColumns(GgmlTensor a, int left, int right)
    {
        if (left < 0 || right < 0)
        {
            throw new ArgumentException($"pad: negative padding ({left}, {right}).");
        }

        return New(GgmlNative.ggml_pad_ext(_context, Dense(a, "pad").Handle, left, right, 0, 0, 0, 0, 0, 0));
    }

    /// <summary>Zero padding: <paramref name="before"/> and <paramref name="after"/> rows along dimension 1.</summary>
    public GgmlTensor PadRows(GgmlTensor a, int before, int after)
    {
        if (before < 0 || after < 0)
        {
            throw new ArgumentException($"pad: negative padding ({before}, {after}).");
        }

        return New(GgmlNative.ggml_pad_ext(_context, Dense(a, "pad").Handle, 0, 0, before, after, 0, 0, 0, 0));
    }

    /// <summary>A 3-D view [ne0, ne1, ne2] of <paramref name="a"/>'s data with the given byte strides and offset, bounds-checked.</summary>
    public GgmlTensor View(GgmlTensor a, long ne0, long ne1, long ne2, long nb1, long nb2, long offset)
    {
        long lastByte = offset + (ne0 - 1) * a.ElementSize + (ne1 - 1) * nb1 + (ne2 - 1) * nb2 + a.ElementSize;
        if (!a.IsContiguous || ne0 <= 0 || ne1 <= 0 || ne2 <= 0 || offset < 0 || lastByte > a.ElementCount * a.ElementSize)
        {
            throw new ArgumentException($"view: [{ne0}, {ne1}, {ne2}] at offset {offset} does not lie inside {a}.");
        }

        return New(GgmlNative.ggml_view_3d(_context, a.Handle, ne0, ne1, ne2, (nuint)nb1, (nuint)nb2, (nuint)offset));
    }

    /// <summary>Rows of <paramref name="table"/> ([width, rows]) picked by <paramref name="indices"/> (I32).</summary>
    public GgmlTensor GetRows(GgmlTensor table, GgmlTensor indices)
    {
        Require(indices.Type == GgmlElementType.I32 && indices.Ne2 == 1 && indices.Ne3 == 1 && table.Ne2 == 1, "get_rows", table, indices);
        return New(GgmlNative.ggml_get_rows(_context, table.Handle, indices.Handle));
    }

    /// <summary>a tiled to [ne0, ne1, ne2, ne3]; each of a's dimensions must divide the target's.</summary>
    public GgmlTensor Repeat(GgmlTensor a, long ne0, long ne1, long ne2 = 1, long ne3 = 1)
    {
        long[] target = [ne0, ne1, ne2, ne3];
        if (Enumerable.Range(0, 4).Any(d => target[d] <= 0 || target[d] % a.Ne(d) != 0))
        {
            throw new ArgumentException($"repeat: {a} does not tile [{string.Join(", ", target)}].");
        }

        return New(GgmlNative.ggml_repeat_4d(_context, a.Handle, ne0, ne1, ne2, ne3));
    }

    /// <summary>
    /// 1-D convolution as PyTorch's Conv1d computes it. <paramref name="kernel"/> is [K, in, out] (PyTorch [out, in, K]),
    /// F32; <paramref name="input"/> is [T, in]. Returns [T_out, out]. The unfolded input stays F32 (ggml_conv_1d would round it to F16).
    /// </summary>
    public GgmlTensor Conv1d(GgmlTensor kernel, GgmlTensor input, int stride = 1, int padding = 0, int dilation = 1)
    {
        Require(kernel.Type == GgmlElementType.F32 && kernel.Ne1 == input.Ne1 && input.Ne2 == 1 && input.Ne3 == 1 && kernel.Ne3 == 1, "conv_1d", kernel, input);
        long outputLength = ConvOutputLength(input.Ne0, kernel.Ne0, stride, padding, dilation, "conv_1d");
        var unfolded = New(GgmlNative.ggml_im2col(_context, kernel.Handle, Dense(input, "conv_1d").Handle, stride, 0, padding, 0, dilation, 0, false, GgmlElementType.F32));
        var columns = Reshape(unfolded, kernel.Ne0 * kernel.Ne1, outputLength);
        return MulMat(columns, Reshape(kernel, kernel.Ne0 * kernel.Ne1, kernel.Ne2));
    }

    /// <summary>Depthwise 1-D convolution (groups = channels): <paramref name="kernel"/> [K, 1, C] F32, <paramref name="input"/> [T, C]. Returns [T_out, C].</summary>
    public GgmlTensor DepthwiseConv1d(GgmlTensor kernel, GgmlTensor input, int stride = 1, int padding = 0, int dilation = 1)
    {
        Require(kernel.Type == GgmlElementType.F32 && kernel.Ne1 == 1 && kernel.Ne2 == input.Ne1 && input.Ne2 == 1 && input.Ne3 == 1, "conv_1d_dw", kernel, input);
        long outputLength = ConvOutputLength(input.Ne0, kernel.Ne0, stride, padding, dilation, "conv_1d_dw");
        var perChannel = Reshape(Dense(input, "conv_1d_dw"), input.Ne0, 1, input.Ne1, 1);
        var unfolded = New(GgmlNative.ggml_im2col(_context, kernel.Handle, perChannel.Handle, stride, 0, padding, 0, dilation, 0, false, GgmlElementType.F32));
        return Reshape(MulMat(unfolded, kernel), outputLength, input.Ne1);
    }

    /// <summary>
    /// Transposed 1-D convolution as PyTorch's ConvTranspose1d computes it. <paramref name="kernel"/> is [K, out, in]
    /// (PyTorch [in, out, K]); <paramref name="input"/> is [T, in]. ggml only computes padding 0, so the full result is
    /// cropped by <paramref name="padding"/> on each side, and <paramref name="outputPadding"/> extends the right end.
    /// </summary>
    public GgmlTensor ConvTranspose1d(GgmlTensor kernel, GgmlTensor input, int stride, int padding = 0, int outputPadding = 0)
    {
        Require(kernel.Ne2 == input.Ne1 && kernel.Ne3 == 1 && input.Ne2 == 1 && input.Ne3 == 1 && kernel.Type == GgmlElementType.F32 && input.Type == GgmlElementType.F32, "conv_transpose_1d", kernel, input);
        if (stride <= 0 || padding < 0 || outputPadding < 0 || outputPadding >= stride)
        {
            throw new ArgumentException($"conv_transpose_1d: stride {stride}, padding {padding}, output padding {outputPadding} are not valid (output padding must be below the stride).");
        }

        long fullLength = (input.Ne0 - 1) * stride + kernel.Ne0;
        long outputLength = fullLength - 2 * padding + outputPadding;
        if (outputLength <= 0)
        {
            throw new ArgumentException($"conv_transpose_1d: padding {padding} leaves nothing of {fullLength} samples.");
        }

        var full = New(GgmlNative.ggml_conv_transpose_1d(_context, kernel.Handle, Dense(input, "conv_transpose_1d").Handle, stride, 0, 1));
        long available = Math.Min(outputLength, fullLength - padding);
        var cropped = Cont(Columns(full, padding, available));
        return available == outputLength ? cropped : PadColumns(cropped, 0, (int)(outputLength - available));
    }

    private static long ConvOutputLength(long length, long kernel, int stride, int padding, int dilation, string op)
    {
        if (stride <= 0 || padding < 0 || dilation <= 0)
        {
            throw new ArgumentException($"{op}: stride {stride}, padding {padding}, dilation {dilation} are not valid.");
        }

        long output = (length + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
        return output > 0 ? output : throw new ArgumentException($"{op}: an input of {length} is too short for a kernel of {kernel} (dilation {dilation}, padding {padding}).");
    }

    private static string CheckName(string name) => System.Text.Encoding.UTF8.GetByteCount(name) < GgmlNative.MaxNameLength
        ? name
        : throw new ArgumentException($"Tensor name '{name}' is longer than ggml's {GgmlNative.MaxNameLength - 1} bytes.");

    private static bool IsDenseF32(GgmlTensor a) => a.Type == GgmlElementType.F32 && a.IsContiguous;

    // [channels, time]: what the fused kernels read, and the shape both ways of computing them return.
    private static bool IsChannelsByTime(GgmlTensor a) => IsDenseF32(a) && a.Ne2 == 1 && a.Ne3 == 1 && a.ElementCount > 0;

    private static bool IsPerChannel(GgmlTensor parameter, GgmlTensor x) => IsDenseF32(parameter) && parameter.ElementCount == x.Ne0;

    // A convolution's taps over [channels, time] x: [channels, K], one row per tap.
    private static bool IsTapsPerChannel(GgmlTensor taps, GgmlTensor x) => IsDenseF32(taps) && taps.Ne0 == x.Ne0 && taps.Ne2 == 1 && taps.Ne3 == 1;

    // A fused CPU kernel's op: an F32 [ne0, ne1] result that reads its operands from its sources.
    private unsafe GgmlTensor Custom(long ne0, long ne1, ReadOnlySpan<GgmlTensor> operands, delegate* unmanaged[Cdecl]<IntPtr, int, int, IntPtr, void> kernel, nint userData = 0)
    {
        IntPtr* handles = stackalloc IntPtr[operands.Length];
        for (int i = 0; i < operands.Length; i++)
        {
            handles[i] = operands[i].Handle;
        }

        return New(GgmlNative.ggml_custom_4d(_context, GgmlElementType.F32, ne0, ne1, 1, 1, handles, operands.Length, kernel, GgmlNative.AllThreads, userData));
    }

    private static void Require(bool condition, string op, GgmlTensor a, GgmlTensor b)
    {
        if (!condition)
        {
            throw new ArgumentException($"{op}: shapes {a} and {b} do not fit.");
        }
    }

    private static void RequireReshape(GgmlTensor a, long elements, long[] shape)
    {
        if (elements != a.ElementCount || !a.IsContiguous || shape.Any(d => d <= 0))
        {
            throw new ArgumentException($"reshape: {a}{(a.IsContiguous ? "" : " (not contiguous)")} cannot become [{string.Join(", ", shape)}].");
        }
    }

    private GgmlTensor Broadcastable(GgmlTensor a, GgmlTensor b, string op)
    {
        Require(Enumerable.Range(0, 4).All(d => a.Ne(d) % b.Ne(d) == 0), op, a, b);
        return b;
    }

    // Row-wise and unary ops read their input as dense rows: make strided views dense first.
    private GgmlTensor Dense(GgmlTensor a, string op) => a.IsContiguous ? a : Cont(a);

    private GgmlTensor New(IntPtr handle) => new(handle);
}
