using System.Runtime.InteropServices;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Connector.Tests.Native;

/// <summary>Each graph operation against a direct managed computation of what PyTorch would compute.</summary>
public sealed class GgmlOpsTests : IDisposable
{
    private const float Tolerance = 1e-5f;
    private readonly GgmlStage _stage = new("test", new GgmlComputeOptions { Threads = 2 });
    private readonly Random _random = new(42);

    [Fact]
    public void TensorStructOffsetsMatchTheNativeLayout()
    {
        var output = _stage.Run(graph =>
        {
            var a = graph.Input("a", GgmlElementType.F32, 3, 5, 7, 2);
            Assert.Equal([3L, 5L, 7L, 2L], a.Shape);
            Assert.Equal(GgmlNative.ggml_nelements(a.Handle), a.ElementCount);
            Assert.Equal((long)GgmlNative.ggml_nbytes(a.Handle), a.Nb(3) * a.Ne3);
            Assert.Equal(4, a.Nb(0));
            Assert.True(a.IsContiguous);
            Assert.False(a.IsAllocated); // until the scheduler allocates the graph
            var sum = graph.Add(a, a);
            Assert.Equal(a.Handle, sum.Source(0).Handle);
            Assert.Equal(a.Handle, sum.Source(1).Handle);
            Assert.False(sum.HasSource(2));
            var transposed = graph.Transpose(a);
            Assert.False(transposed.IsContiguous);
            Assert.Equal([5L, 3L, 7L, 2L], transposed.Shape);
            graph.Output("out", graph.Scale(a, 1f));
        }, new Dictionary<string, Array> { ["a"] = new float[3 * 5 * 7 * 2] });
        Assert.Equal(210, output["out"].Length);
        Assert.Equal(24, Marshal.SizeOf<GgmlInitParams>());
        Assert.Equal(8, (int)Marshal.OffsetOf<GgmlInitParams>(nameof(GgmlInitParams.mem_buffer)));
        Assert.Equal(16, (int)Marshal.OffsetOf<GgmlInitParams>(nameof(GgmlInitParams.no_alloc)));
    }

    [Fact]
    public void MulMatMultipliesAlongTheFirstDimension()
    {
        const int k = 5, m = 4, n = 3;
        float[] a = RandomValues(k * m), b = RandomValues(k * n);
        var expected = new float[m * n];
        for (int j = 0; j < n; j++)
        {
            for (int i = 0; i < m; i++)
            {
                for (int p = 0; p < k; p++)
                {
                    expected[j * m + i] += a[i * k + p] * b[j * k + p];
                }
            }
        }

        var actual = RunOne(g => g.MulMat(g.Input("a", GgmlElementType.F32, k, m), g.Input("b", GgmlElementType.F32, k, n)), ("a", a), ("b", b));

        AssertClose(expected, actual);
    }

    // 5 channels are all a vector's tail; 21 are two vectors and a tail.
    [Theory]
    [InlineData(true, 5, 1, 0)]
    [InlineData(true, 21, 3, 0)]
    [InlineData(true, 5, 9, 27)]
    [InlineData(true, 21, 3, 9)]
    [InlineData(true, 21, 9, 60)]
    [InlineData(false, 5, 1, 0)]
    [InlineData(false, 21, 9, 27)]
    public void DepthwiseConvolutionConvolvesEachChannelAlongTime(bool fused, int channels, int dilation, int padding)
    {
        const int length = 90, kernel = 7;
        float[] x = RandomValues(channels * length), taps = RandomValues(channels * kernel);
        int outputs = length + 2 * padding - (kernel - 1) * dilation;
        var expected = new float[channels * outputs];
        for (int t = 0; t < outputs; t++)
        {
            for (int c = 0; c < channels; c++)
            {
                for (int k = 0; k < kernel; k++)
                {
                    int source = t + k * dilation - padding;
                    expected[t * channels + c] += source is >= 0 and < length ? taps[k * channels + c] * x[source * channels + c] : 0f;
                }
            }
        }

        using var stage = new GgmlStage("depthwise", new GgmlComputeOptions { Threads = 2, FuseCpuKernels = fused });
        var actual = stage.Run(
            g => g.Output("out", g.DepthwiseConvolution(g.Input("x", GgmlElementType.F32, channels, length), g.Input("taps", GgmlElementType.F32, channels, kernel), dilation, padding)),
            new Dictionary<string, Array> { ["x"] = x, ["taps"] = taps })["out"];

        AssertClose(expected, actual);
    }

    [Fact]
    public void DepthwiseConvolutionRefusesMismatchedTapsBeforeGgmlSeesThem()
    {
        var error = Assert.Throws<ArgumentException>(() => _stage.Run(
            g => g.Output("out", g.DepthwiseConvolution(g.Input("x", GgmlElementType.F32, 5, 20), g.Input("taps", GgmlElementType.F32, 4, 7), 3)),
            new Dictionary<string, Array> { ["x"] = new float[100], ["taps"] = new float[28] }));

        Assert.Contains("depthwise", error.Message);
    }

    // Channels that tile a 2048-element tile unevenly, and more channels than a tile holds.
    [Theory]
    [InlineData(true, false, 5)]
    [InlineData(true, true, 5)]
    [InlineData(true, true, 3000)]
    [InlineData(false, false, 5)]
    [InlineData(false, true, 5)]
    public void SnakeMatchesItsDefinitionFusedOrComposed(bool fused, bool withBias, int channels)
    {
        int length = channels > 1000 ? 3 : 997;
        float[] x = [.. RandomValues(channels * length).Select(v => 4 * v)];
        float[] alpha = [.. RandomValues(channels).Select(v => 1.1f + v)], bias = RandomValues(channels);
        float[] reciprocal = [.. alpha.Select(a => 1f / (a + 1e-9f))];
        var expected = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = i % channels;
            double y = x[i] + (withBias ? bias[c] : 0.0), sine = Math.Sin(alpha[c] * y);
            expected[i] = (float)(y + sine * sine / (alpha[c] + 1e-9));
        }

        using var stage = new GgmlStage("snake", new GgmlComputeOptions { Threads = 2, FuseCpuKernels = fused });
        var inputs = new Dictionary<string, Array> { ["x"] = x, ["alpha"] = alpha, ["reciprocal"] = reciprocal, ["bias"] = bias };
        var actual = stage.Run(g =>
        {
            Assert.Equal(fused, g.FusedCpuKernels);
            var b = withBias ? g.Input("bias", GgmlElementType.F32, channels) : (GgmlTensor?)null;
            g.Output("out", g.Snake(g.Input("x", GgmlElementType.F32, channels, length), g.Input("alpha", GgmlElementType.F32, channels), g.Input("reciprocal", GgmlElementType.F32, channels), b));
        }, inputs)["out"];

        AssertClose(expected, actual);
    }

    // 21 channels are two vectors and a tail; 5 only a tail. Short inputs have outputs every tap of which falls off an end.
    [Theory]
    [InlineData(true, 21, 7, 300)]
    [InlineData(true, 5, 7, 2)]
    [InlineData(true, 21, 3, 40)]
    [InlineData(false, 21, 7, 300)]
    [InlineData(false, 5, 3, 40)]
    public void ConvolutionToOneChannelPadsLikePyTorchsSamePadding(bool fused, int channels, int kernel, int length)
    {
        float[] x = RandomValues(channels * length), taps = RandomValues(channels * kernel), bias = RandomValues(1);
        var expected = new float[length];
        for (int t = 0; t < length; t++)
        {
            double sum = bias[0];
            for (int k = 0; k < kernel; k++)
            {
                int source = t + k - kernel / 2;
                for (int c = 0; c < channels && source is >= 0 && source < length; c++)
                {
                    sum += taps[k * channels + c] * x[source * channels + c];
                }
            }

            expected[t] = (float)sum;
        }

        using var stage = new GgmlStage("one channel", new GgmlComputeOptions { Threads = 2, FuseCpuKernels = fused });
        var actual = stage.Run(
            g => g.Output("out", g.ConvolutionToOneChannel(g.Input("x", GgmlElementType.F32, channels, length), g.Input("taps", GgmlElementType.F32, channels, kernel), g.Input("bias", GgmlElementType.F32, 1))),
            new Dictionary<string, Array> { ["x"] = x, ["taps"] = taps, ["bias"] = bias })["out"];

        AssertClose(expected, actual);
    }

    // The fused Snake's own single-precision sin^2 reduces angles by multiples of pi / 2. With alphas up to 8000 and a
    // reciprocal of 1, the output is x + sin(alpha x)^2 for |x| <= 1: across thousands of periods, and past the reach
    // where the kernel hands over to the exact path, sin^2 stays within a few ulp of the definition.
    [Fact]
    public void FusedSnakeHoldsItsPrecisionForLargeAngles()
    {
        const int channels = 24, length = 4000;
        float[] alpha = [.. Enumerable.Range(0, channels).Select(c => MathF.Pow(10f, 3.9f * c / (channels - 1)))];
        float[] reciprocal = [.. alpha.Select(_ => 1f)];
        float[] x = RandomValues(channels * length);
        using var stage = new GgmlStage("snake", new GgmlComputeOptions { Threads = 2 });
        var actual = stage.Run(
            g => g.Output("out", g.Snake(g.Input("x", GgmlElementType.F32, channels, length), g.Input("alpha", GgmlElementType.F32, channels), g.Input("reciprocal", GgmlElementType.F32, channels))),
            new Dictionary<string, Array> { ["x"] = x, ["alpha"] = alpha, ["reciprocal"] = reciprocal })["out"];

        Assert.Contains(x.Select((v, i) => Math.Abs(v * alpha[i % channels])), angle => angle > 7000);
        for (int i = 0; i < x.Length; i++)
        {
            float angle = alpha[i % channels] * x[i];
            double sine = Math.Sin(angle);
            Assert.True(Math.Abs(actual[i] - (x[i] + sine * sine)) <= 1e-6, $"[{i}] angle {angle}: {actual[i]} vs {x[i] + sine * sine}");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AddWithBiasSumsBothTensorsAndAChannelBias(bool fused)
    {
        const int channels = 7, length = 613;
        float[] x = RandomValues(channels * length), y = RandomValues(channels * length), bias = RandomValues(channels);
        float[] expected = [.. x.Select((v, i) => v + y[i] + bias[i % channels])];

        using var stage = new GgmlStage("add", new GgmlComputeOptions { Threads = 2, FuseCpuKernels = fused });
        var actual = stage.Run(
            g => g.Output("out", g.AddWithBias(g.Input("x", GgmlElementType.F32, channels, length), g.Input("y", GgmlElementType.F32, channels, length), g.Input("bias", GgmlElementType.F32, channels))),
            new Dictionary<string, Array> { ["x"] = x, ["y"] = y, ["bias"] = bias })["out"];

        AssertClose(expected, actual);
    }

    // PyTorch's cropping for kernel 2 * stride (first (stride + 1) / 2, T * stride samples), and the whole result.
    [Theory]
    [InlineData(true, 2, 1, 2 * 9)]
    [InlineData(true, 3, 2, 3 * 9)]
    [InlineData(true, 8, 4, 8 * 9)]
    [InlineData(true, 4, 0, 4 * 10)]
    [InlineData(false, 3, 2, 3 * 9)]
    [InlineData(false, 4, 0, 4 * 10)]
    public void TransposedConvolutionMatchesPyTorchsConvTranspose1d(bool fused, int stride, int first, int length)
    {
        const int inputs = 6, outputs = 5, steps = 9;
        int kernel = 2 * stride;
        float[] x = RandomValues(inputs * steps), weight = RandomValues(inputs * outputs * kernel), bias = RandomValues(outputs);
        // PyTorch's weight is [in, out, K]; the op takes rows (k, o) of length in.
        var taps = new float[weight.Length];
        for (int i = 0; i < inputs; i++)
        {
            for (int o = 0; o < outputs; o++)
            {
                for (int k = 0; k < kernel; k++)
                {
                    taps[(k * outputs + o) * inputs + i] = weight[(i * outputs + o) * kernel + k];
                }
            }
        }

        var expected = new float[outputs * length];
        for (int r = 0; r < length; r++)
        {
            for (int o = 0; o < outputs; o++)
            {
                double sum = bias[o];
                for (int t = 0; t < steps; t++)
                {
                    int k = r + first - t * stride;
                    for (int i = 0; i < inputs && k is >= 0 && k < kernel; i++)
                    {
                        sum += x[t * inputs + i] * weight[(i * outputs + o) * kernel + k];
                    }
                }

                expected[r * outputs + o] = (float)sum;
            }
        }

        using var stage = new GgmlStage("transposed", new GgmlComputeOptions { Threads = 2, FuseCpuKernels = fused });
        var actual = stage.Run(
            g => g.Output("out", g.TransposedConvolution(g.Input("x", GgmlElementType.F32, inputs, steps), g.Input("taps", GgmlElementType.F32, inputs, outputs * kernel), stride, first, length, g.Input("bias", GgmlElementType.F32, outputs))),
            new Dictionary<string, Array> { ["x"] = x, ["taps"] = taps, ["bias"] = bias })["out"];

        AssertClose(expected, actual);
    }

    [Fact]
    public void FusedOpsRefuseShapesTheirKernelsCannotRead()
    {
        string Refusal(Func<GgmlGraphBuilder, GgmlTensor> build) =>
            Assert.Throws<ArgumentException>(() => _stage.Run(g => g.Output("out", build(g)), new Dictionary<string, Array>())).Message;
        GgmlTensor X(GgmlGraphBuilder g) => g.Input("x", GgmlElementType.F32, 4, 10);
        GgmlTensor PerChannel(GgmlGraphBuilder g, string name, int count = 4) => g.Input(name, GgmlElementType.F32, count);

        Assert.Contains("snake", Refusal(g => g.Snake(g.Transpose(g.Input("square", GgmlElementType.F32, 4, 4)), PerChannel(g, "alpha"), PerChannel(g, "reciprocal"))));
        Assert.Contains("snake", Refusal(g => g.Snake(X(g), PerChannel(g, "alpha", 6), PerChannel(g, "reciprocal"))));
        Assert.Contains("snake", Refusal(g => g.Snake(X(g), PerChannel(g, "alpha"), PerChannel(g, "reciprocal"), PerChannel(g, "bias", 3))));
        Assert.Contains("snake", Refusal(g => g.Snake(g.Input("cube", GgmlElementType.F32, 4, 5, 2), PerChannel(g, "alpha"), PerChannel(g, "reciprocal"))));
        Assert.Contains("one channel", Refusal(g => g.ConvolutionToOneChannel(X(g), g.Input("taps", GgmlElementType.F32, 4, 6), PerChannel(g, "bias", 1))));
        Assert.Contains("one channel", Refusal(g => g.ConvolutionToOneChannel(X(g), g.Input("taps", GgmlElementType.F32, 4, 7), PerChannel(g, "bias", 2))));
        Assert.Contains("add with bias", Refusal(g => g.AddWithBias(X(g), g.Input("y", GgmlElementType.F32, 8, 5), PerChannel(g, "bias"))));
        // 12 rows are 2 outputs x 2 x stride 3, and the full result has (10 + 1) * 3 rows; with stride 4 they are no whole outputs.
        Assert.Contains("transposed", Refusal(g => g.TransposedConvolution(X(g), g.Input("taps", GgmlElementType.F32, 4, 12), 3, 2, 32, PerChannel(g, "bias", 2))));
        Assert.Contains("transposed", Refusal(g => g.TransposedConvolution(X(g), g.Input("taps", GgmlElementType.F32, 4, 12), 4, 0, 8, PerChannel(g, "bias", 1))));
    }

    [Fact]
    public void NormAndGeluErfMatchLayerNormAndExactGelu()
    {
        const int width = 8, rows = 3;
        float[] x = RandomValues(width * rows);
        var expected = new float[x.Length];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * width, width);
            double mean = row.ToArray().Average();
            double variance = row.ToArray().Select(v => (v - mean) * (v - mean)).Average();
            for (int i = 0; i < width; i++)
            {
                double normalised = (row[i] - mean) / Math.Sqrt(variance + 1e-5);
                expected[r * width + i] = (float)(0.5 * normalised * (1 + Erf(normalised / Math.Sqrt(2))));
            }
        }

        var actual = RunOne(g => g.GeluErf(g.Norm(g.Input("x", GgmlElementType.F32, width, rows), 1e-5f)), ("x", x));

        AssertClose(expected, actual, 1e-5f);
    }

    [Fact]
    public void SoftMaxIsScaledAndNormalisedPerRow()
    {
        float[] x = [1, 2, 3, 0, 0, 0];
        var actual = RunOne(g => g.SoftMax(g.Input("x", GgmlElementType.F32, 3, 2), 0.5f), ("x", x));
        double e0 = Math.Exp(0.5), e1 = Math.Exp(1.0), e2 = Math.Exp(1.5), sum = e0 + e1 + e2;
        AssertClose([(float)(e0 / sum), (float)(e1 / sum), (float)(e2 / sum), 1f / 3, 1f / 3, 1f / 3], actual);
    }

    [Theory]
    [InlineData(3, 1, 1, 1)] // Whisper's conv1
    [InlineData(3, 2, 1, 1)] // Whisper's conv2
    [InlineData(7, 1, 3, 1)]
    [InlineData(1, 1, 0, 1)]
    [InlineData(3, 1, 3, 3)]
    public void Conv1dMatchesPyTorch(int kernelSize, int stride, int padding, int dilation)
    {
        const int length = 11, inputs = 3, outputs = 4;
        float[] kernel = RandomValues(outputs * inputs * kernelSize), input = RandomValues(inputs * length);
        int outputLength = (length + 2 * padding - dilation * (kernelSize - 1) - 1) / stride + 1;
        var expected = new float[outputs * outputLength];
        for (int o = 0; o < outputs; o++)
        {
            for (int t = 0; t < outputLength; t++)
            {
                double sum = 0;
                for (int c = 0; c < inputs; c++)
                {
                    for (int k = 0; k < kernelSize; k++)
                    {
                        int at = t * stride - padding + k * dilation;
                        sum += at >= 0 && at < length ? kernel[(o * inputs + c) * kernelSize + k] * input[c * length + at] : 0;
                    }
                }

                expected[o * outputLength + t] = (float)sum;
            }
        }

        var actual = RunOne(g => g.Conv1d(g.Input("k", GgmlElementType.F32, kernelSize, inputs, outputs), g.Input("x", GgmlElementType.F32, length, inputs), stride, padding, dilation), ("k", kernel), ("x", input));

        AssertClose(expected, actual);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(9)]
    public void DepthwiseConv1dMatchesPyTorchWithDilation(int dilation)
    {
        const int length = 40, channels = 3, kernelSize = 7;
        int padding = 3 * dilation; // SNAC's residual units keep the length: padding = (7 - 1) * d / 2
        float[] kernel = RandomValues(channels * kernelSize), input = RandomValues(channels * length);
        var expected = new float[channels * length];
        for (int c = 0; c < channels; c++)
        {
            for (int t = 0; t < length; t++)
            {
                double sum = 0;
                for (int k = 0; k < kernelSize; k++)
                {
                    int at = t - padding + k * dilation;
                    sum += at >= 0 && at < length ? kernel[c * kernelSize + k] * input[c * length + at] : 0;
                }

                expected[c * length + t] = (float)sum;
            }
        }

        var actual = RunOne(g => g.DepthwiseConv1d(g.Input("k", GgmlElementType.F32, kernelSize, 1, channels), g.Input("x", GgmlElementType.F32, length, channels), 1, padding, dilation), ("k", kernel), ("x", input));

        AssertClose(expected, actual);
    }

    [Theory]
    [InlineData(8, 4, 0)] // SNAC: kernel 2s, padding ceil(s/2)
    [InlineData(2, 1, 0)]
    [InlineData(3, 2, 1)]
    [InlineData(4, 0, 0)]
    public void ConvTranspose1dMatchesPyTorchPaddingAndOutputPadding(int stride, int padding, int outputPadding)
    {
        const int length = 5, inputs = 3, outputs = 2;
        int kernelSize = 2 * stride;
        float[] kernel = RandomValues(inputs * outputs * kernelSize), input = RandomValues(inputs * length);
        int full = (length - 1) * stride + kernelSize;
        int outputLength = full - 2 * padding + outputPadding;
        var expected = new float[outputs * outputLength];
        for (int c = 0; c < inputs; c++)
        {
            for (int t = 0; t < length; t++)
            {
                for (int o = 0; o < outputs; o++)
                {
                    for (int k = 0; k < kernelSize; k++)
                    {
                        int at = t * stride + k - padding;
                        if (at >= 0 && at < outputLength)
                        {
                            expected[o * outputLength + at] += kernel[(c * outputs + o) * kernelSize + k] * input[c * length + t];
                        }
                    }
                }
            }
        }

        var actual = RunOne(g => g.ConvTranspose1d(g.Input("k", GgmlElementType.F32, kernelSize, outputs, inputs), g.Input("x", GgmlElementType.F32, length, inputs), stride, padding, outputPadding), ("k", kernel), ("x", input));

        AssertClose(expected, actual);
    }

    [Fact]
    public void GetRowsAndBroadcastAddWork()
    {
        float[] table = [0, 1, 10, 11, 20, 21];
        var rows = _stage.Run(g =>
        {
            var picked = g.GetRows(g.Input("table", GgmlElementType.F32, 2, 3), g.Input("ids", GgmlElementType.I32, 2));
            g.Output("out", g.Add(picked, g.Input("bias", GgmlElementType.F32, 2, 1)));
        }, new Dictionary<string, Array> { ["table"] = table, ["ids"] = new[] { 2, 0 }, ["bias"] = new float[] { 100, 200 } })["out"];
        Assert.Equal([120f, 221f, 100f, 201f], rows);
    }

    [Fact]
    public void MismatchedShapesThrowInsteadOfAborting()
    {
        Assert.Throws<ArgumentException>(() => RunOne(g => g.MulMat(g.Input("a", GgmlElementType.F32, 4, 2), g.Input("b", GgmlElementType.F32, 5, 2)), ("a", new float[8]), ("b", new float[10])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.Add(g.Input("a", GgmlElementType.F32, 4, 2), g.Input("b", GgmlElementType.F32, 3)), ("a", new float[8]), ("b", new float[3])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.Conv1d(g.Input("k", GgmlElementType.F32, 3, 2, 4), g.Input("x", GgmlElementType.F32, 10, 3)), ("k", new float[24]), ("x", new float[30])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.Conv1d(g.Input("k", GgmlElementType.F32, 9, 1, 1), g.Input("x", GgmlElementType.F32, 4, 1)), ("k", new float[9]), ("x", new float[4])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.ConvTranspose1d(g.Input("k", GgmlElementType.F32, 4, 1, 1), g.Input("x", GgmlElementType.F32, 4, 1), 2, 0, 2), ("k", new float[4]), ("x", new float[4])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.Reshape(g.Input("a", GgmlElementType.F32, 4, 2), 3, 3), ("a", new float[8])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.Scale(g.Input("a", GgmlElementType.F32, 4), 1f), ("a", new float[5])));
        Assert.Throws<ArgumentException>(() => RunOne(g => g.Scale(g.Input("a", GgmlElementType.F32, 4), 1f)));
    }

    [Fact]
    public void AnInputTheGraphDoesNotUseIsAnErrorNotAnAbort()
    {
        var error = Assert.Throws<ArgumentException>(() => _stage.Run(g =>
        {
            g.Input("unused", GgmlElementType.F32, 4);
            g.Output("out", g.Scale(g.Input("x", GgmlElementType.F32, 4), 2f));
        }, new Dictionary<string, Array> { ["x"] = new float[4], ["unused"] = new float[4] }));

        Assert.Contains("'unused' is not used", error.Message);
    }

    [Fact]
    public void OneStageRunsGraphsOfDifferentSizesOneAfterAnother()
    {
        _stage.Reserve(g => g.Output("out", g.Sqr(g.Input("x", GgmlElementType.F32, 1000))));
        foreach (int length in new[] { 10, 1000, 3, 500 })
        {
            float[] x = RandomValues(length);
            AssertClose([.. x.Select(v => v * v)], RunOne(g => g.Sqr(g.Input("x", GgmlElementType.F32, length)), ("x", x)));
        }
    }

    [Fact]
    public void StagesOnSeveralThreadsDoNotDisturbEachOther()
    {
        var results = Enumerable.Range(0, 4).AsParallel().WithDegreeOfParallelism(4).Select(worker =>
        {
            using var stage = new GgmlStage($"worker {worker}", new GgmlComputeOptions { Threads = 1 });
            var x = Enumerable.Range(0, 257).Select(i => (float)(i * (worker + 1))).ToArray();
            for (int round = 0; round < 20; round++)
            {
                var output = stage.Run(g => g.Output("out", g.Scale(g.Input("x", GgmlElementType.F32, x.Length), 2f)), new Dictionary<string, Array> { ["x"] = x })["out"];
                if (!output.SequenceEqual(x.Select(v => v * 2)))
                {
                    return false;
                }
            }

            return true;
        }).ToList();

        Assert.All(results, Assert.True);
    }

    public void Dispose() => _stage.Dispose();

    private float[] RunOne(Func<GgmlGraphBuilder, GgmlTensor> build, params (string Name, float[] Data)[] inputs) =>
        _stage.Run(g => g.Output("out", build(g)), inputs.ToDictionary(i => i.Name, i => (Array)i.Data))["out"];

    private float[] RandomValues(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(_random.NextDouble() * 2 - 1))];

    private static void AssertClose(float[] expected, float[] actual, float tolerance = Tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"[{i}]: {actual[i]} vs {expected[i]}");
        }
    }

    // Abramowitz-Stegun 7.1.26 is too coarse for 1e-5; integrate erf's series instead.
    private static double Erf(double x)
    {
        double sum = 0, term = x;
        for (int n = 0; n < 60; n++)
        {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }

        return 2 / Math.Sqrt(Math.PI) * sum;
    }
}
