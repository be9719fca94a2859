using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Speech;

/// <summary>
/// SNAC's 24 kHz decoder as one ggml graph: codes of the three codebooks in, speech samples in [-1, 1] out
/// (<see cref="AudioModelParameters.SamplesPerFrame"/> per frame). The noise blocks are off unless a seed is given.
/// The file stores the codec in f32; for a quantized model the decoder keeps its large matrices (pointwise and
/// transposed convolutions) as Q8_0, which halves their cost on a CPU.
/// </summary>
internal sealed class SnacDecoder : IDisposable
{
    private const string Prefix = MiniOmniGgufKeys.SnacTensorPrefix;
    private const string Output = "speech";
    private const string ReciprocalSuffix = ".reciprocal";
    private const string TapsSuffix = ".taps";
    private const string RowsSuffix = ".rows";
    private const string QuantizedSuffix = ".q8_0";
    private const int KernelTaps = 7;

    private const int ResidualUnits = 3;
    private static readonly int[] Dilations = [1, 3, 9];

    private readonly AudioModelParameters _parameters;
    private readonly GgmlStage _stage;
    private readonly GgmlWeights _weights;

    /// <summary>Uploads the codec's weights of <paramref name="file"/> and reserves compute memory for <paramref name="maxFrames"/> frames.</summary>
    /// <param name="file">An audio GGUF.</param>
    /// <param name="parameters">The parameters <paramref name="file"/> states.</param>
    /// <param name="options">Where and on how many threads the graph runs.</param>
    /// <param name="maxFrames">The most frames one call may decode.</param>
    /// <param name="logger">Logs the backend chosen.</param>
    /// <param name="matrixType">
    /// F32, or Q8_0 for the matrices whose rows are whole blocks; null follows the file: Q8_0 for the quantized model
    /// types, whose other matrices are quantized too, F32 otherwise (the parity reference).
    /// </param>
    public SnacDecoder(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, int maxFrames = 64, ILogger? logger = null, GgmlType? matrixType = null)
    {
        if (!parameters.Snac.Depthwise)
        {
            throw new ModelFileException(file.Path, "only depthwise SNAC decoders (as hubertsiuzdak/snac_24khz) are supported.", MiniOmniGgufKeys.SnacDepthwise);
        }

        _parameters = parameters;
        MaxFrames = maxFrames;
        _stage = new GgmlStage("snac decoder", options, logger: logger);
        try
        {
            MatrixType = matrixType ?? MatrixTypeOf(file);
            if (MatrixType is not (GgmlType.F32 or GgmlType.Q8_0))
            {
                throw new ArgumentOutOfRangeException(nameof(matrixType), $"The codec's matrices can be F32 or Q8_0, not {MatrixType}.");
            }

            var derived = DeriveWeights(file, parameters.Snac, MatrixType);
            _weights = GgmlWeights.Load(file, name => name.StartsWith(Prefix, StringComparison.Ordinal), _stage.PrimaryBackend, derived);
            _stage.Reserve(graph => Build(graph, maxFrames, noise: false));
        }
        catch
        {
            _weights?.Dispose();
            _stage.Dispose();
            throw;
        }
    }

    /// <summary>The most frames one call may decode.</summary>
    public int MaxFrames { get; }

    /// <summary>How the pointwise and transposed convolutions' matrices are held: F32 or Q8_0.</summary>
    public GgmlType MatrixType { get; }

    /// <summary>The codec's matrix type for the model type <paramref name="file"/> states: Q8_0 for the quantized types, else F32.</summary>
    public static GgmlType MatrixTypeOf(GgufFile file)
    {
        return file.Metadata.TryGetValue(MiniOmniGgufKeys.FileType, out var type) && type is string name && ModelFileTypes.Names.Contains(name)
            && ModelFileTypes.Parse(name).OwnMatrixType() == GgmlType.Q8_0 ? GgmlType.Q8_0 : GgmlType.F32;
    }

    /// <summary>
    /// Decodes <paramref name="codes"/>. With <paramref name="noiseSeed"/> the noise blocks add seeded Gaussian noise as the
    /// release does; without it they are skipped, as the reference outputs were made.
    /// </summary>
    public float[] Decode(SnacCodes codes, int? noiseSeed = null)
    {
        var inputs = new Dictionary<string, Array>();
        int frames = AddInputs(inputs, codes, noiseSeed, suffix: "");
        bool noise = noiseSeed is not null && _parameters.Snac.Noise;
        return _stage.Run(graph => Build(graph, frames, noise), inputs)[Output];
    }

    /// <summary>
    /// Decodes several windows (of any lengths up to <see cref="MaxFrames"/>) in one graph, without noise: each result
    /// equals <see cref="Decode"/> of its window. One graph spares the per-graph work (building, allocating, waking the
    /// threads) of all but one window; the convolutions themselves cost the same.
    /// </summary>
    public float[][] DecodeBatch(IReadOnlyList<SnacCodes> windows)
    {
        ArgumentNullException.ThrowIfNull(windows);
        if (windows.Count == 0)
        {
            return [];
        }

        var inputs = new Dictionary<string, Array>();
        int[] frames = [.. windows.Select((codes, index) => AddInputs(inputs, codes, noiseSeed: null, suffix: $"_{index}"))];
        var outputs = _stage.Run(graph =>
        {
            for (int index = 0; index < frames.Length; index++)
            {
                Build(graph, frames[index], noise: false, suffix: $"_{index}");
            }
        }, inputs);
        return [.. Enumerable.Range(0, frames.Length).Select(index => outputs[Output + $"_{index}"])];
    }

    // Checks one window's codes and adds them (and its noise) as the inputs of the graph part named by suffix; returns its frames.
    private int AddInputs(Dictionary<string, Array> inputs, SnacCodes codes, int? noiseSeed, string suffix)
    {
        int frames = codes.FrameCount;
        if (frames <= 0 || frames > MaxFrames)
        {
            throw new ArgumentOutOfRangeException(nameof(codes), $"Between 1 and {MaxFrames} frames can be decoded at once; got {frames}.");
        }

        for (int book = 0; book < 3; book++)
        {
            int[] values = codes.Codebooks[book];
            if (values.Length != frames * SnacCodes.CodesPerFrame[book])
            {
                throw new ArgumentException($"Codebook {book} has {values.Length} codes for {frames} frames; expected {frames * SnacCodes.CodesPerFrame[book]}.", nameof(codes));
            }

            // An id past the codebook would read outside the embedding table: refuse it here, not in ggml.
            int bad = Array.FindIndex(values, c => (uint)c >= (uint)_parameters.Snac.CodebookSize);
            if (bad >= 0)
            {
                throw new ArgumentException($"Codebook {book} code {bad} is {values[bad]}, outside 0..{_parameters.Snac.CodebookSize - 1} (a special token in the audio stream?).", nameof(codes));
            }

            inputs[$"codes{book}{suffix}"] = values;
        }

        bool noise = noiseSeed is not null && _parameters.Snac.Noise;
        var random = noise ? new Random(noiseSeed!.Value) : null;
        long length = LatentLength(frames);
        for (int block = 0; block < _parameters.Snac.DecoderRates.Count; block++)
        {
            length *= _parameters.Snac.DecoderRates[block];
            if (random is not null)
            {
                inputs[$"noise{block}{suffix}"] = GaussianNoise(random, (int)length);
            }
        }

        return frames;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // The stage first: it waits for a call in progress, which still reads the weights.
        _stage.Dispose();
        _weights.Dispose();
    }

    private long LatentLength(int frames) => (long)frames * _parameters.Snac.Strides[0];

    /// <summary>
    /// Rearranges, once at load, the weights the channels-first graph reads differently from PyTorch's layout:
    /// Snake's 1 / (alpha + 1e-9), the taps of k7 convolutions as [channels, 7], and transposed-convolution kernels
    /// as one [in, out * K] matrix. With <paramref name="matrixType"/> Q8_0, that matrix and the pointwise convolutions'
    /// are quantized where their rows are whole blocks.
    /// </summary>
    private static List<DerivedTensor> DeriveWeights(GgufFile file, ModelFiles.Conversion.SnacShape snac, GgmlType matrixType)
    {
        int blockElements = GgmlTypeInfo.Block(GgmlType.Q8_0).BlockElements;
        GgmlType TypeFor(long rowLength) => matrixType == GgmlType.Q8_0 && rowLength % blockElements == 0 ? GgmlType.Q8_0 : GgmlType.F32;
        var derived = new List<DerivedTensor>();
        foreach (var tensor in file.Tensors.Values.Where(t => t.Name.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            string name = tensor.Name;
            if (name.EndsWith(".alpha", StringComparison.Ordinal))
            {
                derived.Add(new(name + ReciprocalSuffix, [tensor.ElementCount], [.. file.ReadFloat32(name).Select(a => 1f / (a + 1e-9f))]));
            }
            else if (name.EndsWith(".weight", StringComparison.Ordinal) && tensor.Dims.Count == 3 && tensor.Dims[0] == KernelTaps && (tensor.Dims[1] == 1) != (tensor.Dims[2] == 1))
            {
                // PyTorch [C, 1, 7] (depthwise) or [1, C, 7] (the final conv): both store channel c's taps at c * 7.
                long channels = Math.Max(tensor.Dims[1], tensor.Dims[2]);
                float[] values = file.ReadFloat32(name);
                var taps = new float[values.Length];
                for (int c = 0; c < channels; c++)
                {
                    for (int k = 0; k < KernelTaps; k++)
                    {
                        taps[k * channels + c] = values[c * KernelTaps + k];
                    }
                }

                derived.Add(new(name + TapsSuffix, [channels, KernelTaps], taps, Replaces: name));
            }
            else if (IsTransposedConvolution(name, snac))
            {
                // PyTorch [in, out, K] -> rows (k, out) of length in: one matmul gives every tap of every output channel.
                long k = tensor.Dims[0], outputs = tensor.Dims[1], inputs = tensor.Dims[2];
                int block = Enumerable.Range(0, snac.DecoderRates.Count).First(b => name == TransposedConvolutionName(b, snac));
                if (tensor.Dims.Count != 3 || k != 2 * snac.DecoderRates[block])
                {
                    throw new ModelFileException(file.Path, $"transposed convolution kernel [{string.Join(", ", tensor.Dims)}] is not 2 x stride {snac.DecoderRates[block]}, which the decoder's overlap-add needs.", name);
                }

                float[] values = file.ReadFloat32(name);
                var rows = new float[values.Length];
                for (long i = 0; i < inputs; i++)
                {
                    for (long o = 0; o < outputs; o++)
                    {
                        for (long t = 0; t < k; t++)
                        {
                            rows[(t * outputs + o) * inputs + i] = values[(i * outputs + o) * k + t];
                        }
                    }
                }

                derived.Add(new(name + RowsSuffix, [inputs, outputs * k], rows, TypeFor(inputs), Replaces: name));
            }
            else if (name.EndsWith(".weight", StringComparison.Ordinal) && tensor.Dims.Count == 3 && tensor.Dims[0] == 1 && TypeFor(tensor.Dims[1]) == GgmlType.Q8_0)
            {
                // A pointwise convolution [out, in, 1]: already one [in, out] matrix, quantized here.
                derived.Add(new(name + QuantizedSuffix, [tensor.Dims[1], tensor.Dims[2]], file.ReadFloat32(name), GgmlType.Q8_0, Replaces: name));
            }
        }

        return derived;
    }

    // The transposed convolutions are part 1 of each upsampling block, which follow the two input convolutions.
    private static string TransposedConvolutionName(int block, ModelFiles.Conversion.SnacShape snac) => $"{Prefix}decoder.model.{2 + block}.block.1.weight";

    private static bool IsTransposedConvolution(string name, ModelFiles.Conversion.SnacShape snac) =>
        Enumerable.Range(0, snac.DecoderRates.Count).Any(b => name == TransposedConvolutionName(b, snac));

    private void Build(GgmlGraphBuilder graph, int frames, bool noise, string suffix = "")
    {
        var snac = _parameters.Snac;
        long latentLength = LatentLength(frames);

        // Codes -> latent [channels, time]: each codebook's vectors, projected to the latent width, repeated to codebook 0's rate, summed.
        GgmlTensor? latent = null;
        for (int book = 0; book < snac.Strides.Count; book++)
        {
            string quantizer = $"{Prefix}quantizer.quantizers.{book}.";
            long codes = latentLength / snac.Strides[book];
            var vectors = graph.GetRows(_weights[quantizer + "codebook.weight"], graph.Input($"codes{book}{suffix}", GgmlElementType.I32, codes));
            var projected = graph.Add(graph.MulMat(Matrix(graph, quantizer + "out_proj.weight"), vectors), _weights[quantizer + "out_proj.bias"]);
            var repeated = graph.Reshape(graph.Repeat(graph.Reshape(projected, snac.LatentDim, 1, codes), snac.LatentDim, snac.Strides[book], codes), snac.LatentDim, latentLength);
            latent = latent is null ? repeated : graph.Add(latent.Value, repeated);
        }

        // The decoder runs channels-first, [channels, time]: pointwise convolutions are plain matrix products.
        int layer = 0;
        var cur = Bias(DepthwiseConv(graph, latent!.Value, $"decoder.model.{layer}", dilation: 1), $"decoder.model.{layer++}", graph);
        cur = Bias(graph.MulMat(Matrix(graph, $"{Prefix}decoder.model.{layer}.weight"), cur), $"decoder.model.{layer++}", graph);

        long length = latentLength;
        for (int block = 0; block < snac.DecoderRates.Count; block++)
        {
            int rate = snac.DecoderRates[block];
            string prefix = $"decoder.model.{layer++}.block.";
            int part = 0;
            var activated = Snake(graph, cur, $"{prefix}{part++}");
            length *= rate;
            cur = TransposedConv(graph, activated, $"{prefix}{part++}", rate, length);
            if (snac.Noise)
            {
                if (noise)
                {
                    // x + randn(T) * linear(x): one noise value per time step, shared by all channels.
                    var scaled = graph.MulMat(Matrix(graph, $"{Prefix}{prefix}{part}.linear.weight"), cur);
                    cur = graph.Add(cur, graph.Mul(scaled, graph.Input($"noise{block}{suffix}", GgmlElementType.F32, 1, length)));
                }

                part++;
            }

            for (int unit = 0; unit < ResidualUnits; unit++)
            {
                cur = ResidualUnit(graph, cur, $"{prefix}{part++}.block.", Dilations[unit]);
            }
        }

        var final = Snake(graph, cur, $"decoder.model.{layer++}");
        var speech = graph.ConvolutionToOneChannel(final, _weights[$"{Prefix}decoder.model.{layer}.weight{TapsSuffix}"], _weights[$"{Prefix}decoder.model.{layer}.bias"]);
        graph.Output(Output + suffix, graph.Tanh(speech));
    }

    // x + conv1x1(snake(depthwise_conv_k7_dilated(snake(x)))), each bias added by the op after it.
    private GgmlTensor ResidualUnit(GgmlGraphBuilder graph, GgmlTensor x, string prefix, int dilation)
    {
        var y = Snake(graph, x, prefix + "0");
        y = DepthwiseConv(graph, y, prefix + "1", dilation);
        y = Snake(graph, y, prefix + "2", biasOf: prefix + "1");
        y = graph.MulMat(Matrix(graph, $"{Prefix}{prefix}3.weight"), y);
        return graph.AddWithBias(x, y, _weights[$"{Prefix}{prefix}3.bias"]);
    }

    // Depthwise k7 convolution with "same" padding (the op reads zeros past either end): [channels, time] in and out, bias not added.
    private GgmlTensor DepthwiseConv(GgmlGraphBuilder graph, GgmlTensor x, string module, int dilation) =>
        graph.DepthwiseConvolution(x, _weights[$"{Prefix}{module}.weight{TapsSuffix}"], dilation, padding: KernelTaps / 2 * dilation);

    // ConvTranspose1d with kernel 2 * stride and padding ceil(stride / 2) on [channels, time]: [outputs, length], bias added.
    private GgmlTensor TransposedConv(GgmlGraphBuilder graph, GgmlTensor x, string module, int stride, long length) =>
        graph.TransposedConvolution(x, _weights[$"{Prefix}{module}.weight{RowsSuffix}"], stride, first: (stride + 1) / 2, length, _weights[$"{Prefix}{module}.bias"]);

    // Snake: x + sin(alpha x)^2 / (alpha + 1e-9), alpha per channel; of x plus the bias of module biasOf when given.
    private GgmlTensor Snake(GgmlGraphBuilder graph, GgmlTensor x, string module, string? biasOf = null) =>
        graph.Snake(x, _weights[$"{Prefix}{module}.alpha"], _weights[$"{Prefix}{module}.alpha{ReciprocalSuffix}"], biasOf is null ? null : _weights[$"{Prefix}{biasOf}.bias"]);

    // A pointwise convolution's weight [1, in, out] as the matrix [in, out], quantized where the load quantized it.
    private GgmlTensor Matrix(GgmlGraphBuilder graph, string name)
    {
        if (_weights.Contains(name + QuantizedSuffix))
        {
            return _weights[name + QuantizedSuffix];
        }

        var weight = _weights[name];
        return graph.Reshape(weight, weight.Ne0 * weight.Ne1, weight.Ne2);
    }

    private GgmlTensor Bias(GgmlTensor x, string module, GgmlGraphBuilder graph) => graph.Add(x, _weights[$"{Prefix}{module}.bias"]);

    private static float[] GaussianNoise(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i += 2)
        {
            // Box-Muller: two normal values from two uniform ones.
            double radius = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble()));
            double angle = 2 * Math.PI * random.NextDouble();
            values[i] = (float)(radius * Math.Cos(angle));
            if (i + 1 < count)
            {
                values[i + 1] = (float)(radius * Math.Sin(angle));
            }
        }

        return values;
    }
}
