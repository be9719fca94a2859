using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Speech;

/// <summary>
/// SNAC's 24 kHz decoder as one ggml graph: codes of the three codebooks in, speech samples in [-1, 1] out
/// (<see cref="AudioModelParameters.SamplesPerFrame"/> per frame). The noise blocks are off unless a seed is given.
/// </summary>
internal sealed class SnacDecoder : IDisposable
{
    private const string Prefix = MiniOmniGgufKeys.SnacTensorPrefix;
    private const string Output = "speech";
    private const string ReciprocalSuffix = ".reciprocal";
    private const int ResidualUnits = 3;
    private static readonly int[] Dilations = [1, 3, 9];

    private readonly AudioModelParameters _parameters;
    private readonly GgmlStage _stage;
    private readonly GgmlWeights _weights;

    /// <summary>Uploads the codec's weights of <paramref name="file"/> and reserves compute memory for <paramref name="maxFrames"/> frames.</summary>
    public SnacDecoder(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, int maxFrames = 64, ILogger? logger = null)
    {
        _parameters = parameters;
        MaxFrames = maxFrames;
        _stage = new GgmlStage("snac decoder", options, logger: logger);
        try
        {
            // Snake divides by (alpha + 1e-9): computed once here rather than in every graph.
            var reciprocals = file.Tensors.Values
                .Where(t => t.Name.StartsWith(Prefix, StringComparison.Ordinal) && t.Name.EndsWith(".alpha", StringComparison.Ordinal))
                .Select(t => new DerivedTensor(t.Name + ReciprocalSuffix, [.. t.Dims], [.. file.ReadFloat32(t.Name).Select(a => 1f / (a + 1e-9f))]))
                .ToList();
            _weights = GgmlWeights.Load(file, name => name.StartsWith(Prefix, StringComparison.Ordinal), _stage.PrimaryBackend, reciprocals);
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

    /// <summary>
    /// Decodes <paramref name="codes"/>. With <paramref name="noiseSeed"/> the noise blocks add seeded Gaussian noise as the
    /// release does; without it they are skipped, as the reference outputs were made.
    /// </summary>
    public float[] Decode(SnacCodes codes, int? noiseSeed = null)
    {
        int frames = codes.FrameCount;
        if (frames <= 0 || frames > MaxFrames)
        {
            throw new ArgumentOutOfRangeException(nameof(codes), $"Between 1 and {MaxFrames} frames can be decoded at once; got {frames}.");
        }

        var inputs = new Dictionary<string, Array>();
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

            inputs[$"codes{book}"] = values;
        }

        bool noise = noiseSeed is not null && _parameters.Snac.Noise;
        if (noise)
        {
            var random = new Random(noiseSeed!.Value);
            long length = LatentLength(frames);
            for (int block = 0; block < _parameters.Snac.DecoderRates.Count; block++)
            {
                length *= _parameters.Snac.DecoderRates[block];
                inputs[$"noise{block}"] = GaussianNoise(random, (int)length);
            }
        }

        return _stage.Run(graph => Build(graph, frames, noise), inputs)[Output];
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _weights.Dispose();
        _stage.Dispose();
    }

    private long LatentLength(int frames) => (long)frames * _parameters.Snac.Strides[0];

    private void Build(GgmlGraphBuilder graph, int frames, bool noise)
    {
        var snac = _parameters.Snac;
        long latentLength = LatentLength(frames);

        // Codes -> latent: each codebook's vectors, projected to the latent width and repeated to codebook 0's rate... summed.
        GgmlTensor? latent = null;
        for (int book = 0; book < snac.Strides.Count; book++)
        {
            string quantizer = $"{Prefix}quantizer.quantizers.{book}.";
            long codes = latentLength / snac.Strides[book];
            var vectors = graph.GetRows(_weights[quantizer + "codebook.weight"], graph.Input($"codes{book}", GgmlElementType.I32, codes));
            var projection = _weights[quantizer + "out_proj.weight"];
            var projected = graph.Add(graph.MulMat(graph.Reshape(projection, projection.Ne1, projection.Ne2), vectors), _weights[quantizer + "out_proj.bias"]);
            var repeated = graph.Reshape(graph.Repeat(graph.Reshape(projected, snac.LatentDim, 1, codes), snac.LatentDim, snac.Strides[book], codes), snac.LatentDim, latentLength);
            latent = latent is null ? repeated : graph.Add(latent.Value, repeated);
        }

        // The decoder convolves [time, channels].
        var cur = graph.Cont(graph.Transpose(latent!.Value));
        int layer = 0;
        if (snac.Depthwise)
        {
            cur = Bias(graph, graph.DepthwiseConv1d(Weight($"decoder.model.{layer}"), cur, padding: 3), $"decoder.model.{layer++}");
        }

        cur = Bias(graph, graph.Conv1d(Weight($"decoder.model.{layer}"), cur, padding: snac.Depthwise ? 0 : 3), $"decoder.model.{layer++}");
        for (int block = 0; block < snac.DecoderRates.Count; block++)
        {
            int rate = snac.DecoderRates[block];
            string prefix = $"decoder.model.{layer++}.block.";
            int part = 0;
            cur = Snake(graph, cur, $"{prefix}{part++}");
            cur = Bias(graph, graph.ConvTranspose1d(Weight($"{prefix}{part}"), cur, rate, padding: (rate + 1) / 2, outputPadding: rate % 2), $"{prefix}{part++}");
            if (snac.Noise)
            {
                if (noise)
                {
                    // x + randn(T) * linear(x): the noise is one value per time step, shared by all channels.
                    var scaled = graph.Conv1d(Weight($"{prefix}{part}.linear"), cur);
                    cur = graph.Add(cur, graph.Mul(scaled, graph.Input($"noise{block}", GgmlElementType.F32, cur.Ne0, 1)));
                }

                part++;
            }

            for (int unit = 0; unit < ResidualUnits; unit++)
            {
                cur = ResidualUnit(graph, cur, $"{prefix}{part++}.block.", Dilations[unit]);
            }
        }

        cur = Snake(graph, cur, $"decoder.model.{layer++}");
        cur = Bias(graph, graph.Conv1d(Weight($"decoder.model.{layer}"), cur, padding: 3), $"decoder.model.{layer}");
        graph.Output(Output, graph.Tanh(cur));
    }

    // y = conv1x1(snake(depthwise_conv_k7_dilated(snake(x)))); x + y (the padding keeps the length, so no crop is needed).
    private GgmlTensor ResidualUnit(GgmlGraphBuilder graph, GgmlTensor x, string prefix, int dilation)
    {
        var y = Snake(graph, x, prefix + "0");
        var kernel = Weight(prefix + "1");
        y = Bias(graph, kernel.Ne1 == 1
            ? graph.DepthwiseConv1d(kernel, y, padding: 3 * dilation, dilation: dilation)
            : graph.Conv1d(kernel, y, padding: 3 * dilation, dilation: dilation), prefix + "1");
        y = Snake(graph, y, prefix + "2");
        y = Bias(graph, graph.Conv1d(Weight(prefix + "3"), y), prefix + "3");
        return graph.Add(x, y);
    }

    // Snake: x + sin(alpha x)^2 / (alpha + 1e-9), alpha per channel.
    private GgmlTensor Snake(GgmlGraphBuilder graph, GgmlTensor x, string module)
    {
        var alpha = _weights[$"{Prefix}{module}.alpha"];
        var reciprocal = _weights[$"{Prefix}{module}.alpha{ReciprocalSuffix}"];
        var sine = graph.Sqr(graph.Sin(graph.Mul(x, alpha)));
        return graph.Add(x, graph.Mul(sine, reciprocal));
    }

    private GgmlTensor Weight(string module) => _weights[$"{Prefix}{module}.weight"];

    private GgmlTensor Bias(GgmlGraphBuilder graph, GgmlTensor x, string module)
    {
        var bias = _weights[$"{Prefix}{module}.bias"];
        return graph.Add(x, graph.Reshape(bias, 1, bias.Ne0));
    }

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
