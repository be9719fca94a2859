namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// SNAC's <c>config.json</c> and weights, with weight-normed convolutions folded on read: <c>X.weight</c> is
/// <c>g * v / ||v||</c> from either <c>X.weight_g</c>/<c>X.weight_v</c> or <c>X.parametrizations.weight.original0/1</c>.
/// </summary>
public sealed class SnacCheckpoint : IDisposable
{
    private readonly ITensorCheckpoint _weights;

    private SnacCheckpoint(SnacConfig config, ITensorCheckpoint weights)
    {
        Config = config;
        _weights = weights;
    }

    /// <summary>The parsed <c>config.json</c>.</summary>
    public SnacConfig Config { get; }

    /// <summary>Opens <paramref name="directory"/> (<c>config.json</c> with <c>pytorch_model.bin</c> or <c>model.safetensors</c>).</summary>
    public static SnacCheckpoint Open(string directory)
    {
        MiniOmniCheckpoint.RequireDirectory(directory, "SNAC");
        string config = Path.Combine(directory, "config.json");
        string weights = new[] { "model.safetensors", "pytorch_model.bin" }.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists)
            ?? throw new ModelFileException(directory, "no pytorch_model.bin or model.safetensors; is this a SNAC directory (hubertsiuzdak/snac_24khz)?");
        if (!File.Exists(config))
        {
            throw new ModelFileException(directory, "no config.json; is this a SNAC directory (hubertsiuzdak/snac_24khz)?", "config.json");
        }

        var parsed = SnacConfig.Load(config);
        if (parsed.AttentionWindowSize is not null)
        {
            throw new ModelFileException(config, "SNAC models with local attention are not supported (the 24 kHz model has none).", "attn_window_size");
        }

        if (!parsed.Depthwise)
        {
            throw new ModelFileException(config, "false is not supported: MiniOmni.SK's decoder is SNAC 24 kHz's, whose first convolution is depthwise.", "depthwise");
        }

        return new SnacCheckpoint(parsed, TensorCheckpointExtensions.OpenAny(weights));
    }

    /// <summary>The tensor <paramref name="name"/> (weight norm folded where the file stores it split), checked to have <paramref name="expectedShape"/>.</summary>
    public CheckpointTensor Get(string name, params long[] expectedShape)
    {
        const string suffix = ".weight";
        if (_weights.Tensors.ContainsKey(name) || !name.EndsWith(suffix, StringComparison.Ordinal))
        {
            return _weights.Get(name, expectedShape);
        }

        string module = name[..^suffix.Length];
        var (gName, vName) = _weights.Tensors.ContainsKey(module + ".weight_g")
            ? (module + ".weight_g", module + ".weight_v")
            : (module + ".parametrizations.weight.original0", module + ".parametrizations.weight.original1");
        var v = _weights.Get(vName, expectedShape);
        var g = _weights.Get(gName, [expectedShape[0], .. Enumerable.Repeat(1L, expectedShape.Length - 1)]);
        return new WeightNormFoldedTensor(name, g, v);
    }

    /// <inheritdoc />
    public void Dispose() => _weights.Dispose();

    /// <summary><c>w = g * v / ||v||</c>, the norm over every dimension but the first (PyTorch's weight_norm with dim=0).</summary>
    private sealed class WeightNormFoldedTensor(string name, CheckpointTensor g, CheckpointTensor v)
        : CheckpointTensor(name, v.SourceFile, v.Shape, v.DType)
    {
        public override float[] ReadFloat32()
        {
            float[] scale = g.ReadFloat32();
            float[] values = v.ReadFloat32();
            int rows = scale.Length;
            int rowLength = values.Length / rows;
            for (int row = 0; row < rows; row++)
            {
                var slice = values.AsSpan(row * rowLength, rowLength);
                // Accumulate in double: the folded weights are compared with the reference to float precision.
                double sumOfSquares = 0;
                foreach (float value in slice)
                {
                    sumOfSquares += (double)value * value;
                }

                double factor = scale[row] / Math.Sqrt(sumOfSquares);
                for (int i = 0; i < slice.Length; i++)
                {
                    slice[i] = (float)(slice[i] * factor);
                }
            }

            return values;
        }
    }
}
