using Microsoft.Extensions.Logging;
using MiniOmni.SK.Audio;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Speech;

/// <summary>How much of Whisper's 30 s window the encoder computes.</summary>
public enum EncoderMode
{
    /// <summary>The whole 30 s window, as the reference does: features match the original to float precision.</summary>
    Exact,

    /// <summary>
    /// Only the frames the audio covers: several times faster for short questions, but attention no longer sees the
    /// padding, so features differ from the reference (measured on the fixture in the encoder tests).
    /// </summary>
    Fast,
}

/// <summary>Whisper features and the adapter's backbone embeddings of one utterance, both [frames x width] row-major.</summary>
internal sealed record EncodedAudio(int FrameCount, float[] WhisperFeatures, float[] AdapterOutput);

/// <summary>
/// The Whisper-small encoder and Mini-Omni's audio adapter as one ggml graph: log-mel in, backbone-width embeddings
/// out, one row per 20 ms of audio.
/// </summary>
internal sealed class WhisperEncoder : IDisposable
{
    private const string MelInput = "mel";
    private const string FeaturesOutput = "whisper_features";
    private const string AdapterOutput = "adapter_out";
    private const string Prefix = MiniOmniGgufKeys.WhisperTensorPrefix + "encoder.";

    private readonly AudioModelParameters _parameters;
    private readonly GgmlStage _stage;
    private readonly GgmlWeights _weights;
    private readonly bool _fusedAttention;

    /// <summary>Uploads the encoder and adapter weights of <paramref name="file"/> and reserves compute memory for a full window.</summary>
    /// <param name="file">The audio file.</param>
    /// <param name="parameters">Its hyper-parameters.</param>
    /// <param name="options">Threads and backend.</param>
    /// <param name="logger">Where the stage logs.</param>
    /// <param name="matrixType">
    /// How the linear weights are held: null as the file stores them; F32 or Q8_0 converts them at load (to measure one
    /// against the other on the same weights: the benchmark's and the accuracy tests' comparison of the two).
    /// </param>
    public WhisperEncoder(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, ILogger? logger = null, GgmlType? matrixType = null)
    {
        _parameters = parameters;
        _stage = new GgmlStage("whisper encoder", options, logger: logger);
        try
        {
            static bool IsEncoderTensor(string name) => name.StartsWith(MiniOmniGgufKeys.WhisperTensorPrefix, StringComparison.Ordinal) || name.StartsWith("whisper_adapter.", StringComparison.Ordinal);
            var converted = matrixType is { } type ? ConvertedMatrices(file, IsEncoderTensor, type) : [];
            _weights = GgmlWeights.Load(file, IsEncoderTensor, _stage.PrimaryBackend, converted);
            string query = Prefix + "blocks.0.attn.query.weight";
            _fusedAttention = (converted.FirstOrDefault(d => d.Name == query)?.Type ?? file.GetTensor(query).Type) != GgmlType.F32;
            _stage.Reserve(graph => Build(graph, parameters.Whisper.Context, parameters.Whisper.Context));
        }
        catch
        {
            _weights?.Dispose();
            _stage.Dispose();
            throw;
        }
    }

    // The linear weights (2-D, named .weight, as the conversion quantizes them) not already of the type asked for, in it;
    // Q8_0 only for rows of whole blocks.
    private static List<DerivedTensor> ConvertedMatrices(GgufFile file, Func<string, bool> include, GgmlType type)
    {
        if (type is not (GgmlType.F32 or GgmlType.Q8_0))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "The encoder's matrices can be held as F32 or Q8_0.");
        }

        return [.. file.Tensors.Values
            .Where(t => include(t.Name) && t.Dims.Count == 2 && t.Name.EndsWith(".weight", StringComparison.Ordinal) && t.Type != type && t.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0)
            .Where(t => type != GgmlType.Q8_0 || t.Dims[0] % GgmlTypeInfo.Block(GgmlType.Q8_0).BlockElements == 0)
            .Select(t => new DerivedTensor(t.Name, [.. t.Dims], file.ReadFloat32(t.Name), type, Replaces: t.Name))];
    }

    /// <summary>
    /// Encodes a log-mel spectrogram ([mels x 3000] row-major, <see cref="WhisperLogMel"/>) and keeps the first
    /// <paramref name="frameCount"/> rows (<see cref="WhisperLogMel.FeatureFrameCount"/> of the audio).
    /// </summary>
    public EncodedAudio Encode(float[] mel, int frameCount, EncoderMode mode = EncoderMode.Exact)
    {
        var whisper = _parameters.Whisper;
        int windowFrames = 2 * whisper.Context;
        if (mel.Length != whisper.MelBins * windowFrames)
        {
            throw new ArgumentException($"A log-mel window has {whisper.MelBins} x {windowFrames} values; got {mel.Length}.", nameof(mel));
        }

        if (frameCount <= 0 || frameCount > whisper.Context)
        {
            throw new ArgumentOutOfRangeException(nameof(frameCount), $"Between 1 and {whisper.Context} feature frames can be kept; asked for {frameCount}.");
        }

        // Fast mode encodes only the mel frames under the kept features (two per feature: conv2 has stride 2).
        int encodedFrames = mode == EncoderMode.Exact ? whisper.Context : frameCount;
        float[] input = mode == EncoderMode.Exact ? mel : SliceFrames(mel, whisper.MelBins, windowFrames, 2 * encodedFrames);
        var outputs = _stage.Run(graph => Build(graph, encodedFrames, frameCount), new Dictionary<string, Array> { [MelInput] = input });
        return new EncodedAudio(frameCount, outputs[FeaturesOutput], outputs[AdapterOutput]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // The stage first: it waits for a call in progress, which still reads the weights.
        _stage.Dispose();
        _weights.Dispose();
    }

    private static float[] SliceFrames(float[] mel, int bins, int frames, int keep)
    {
        var slice = new float[bins * keep];
        for (int bin = 0; bin < bins; bin++)
        {
            Array.Copy(mel, bin * frames, slice, bin * keep, keep);
        }

        return slice;
    }

    private void Build(GgmlGraphBuilder graph, int encodedFrames, int keptFrames)
    {
        var whisper = _parameters.Whisper;
        // ggml's innermost dimension first: the mel is [time, bins], as its rows are bins of 3000 frames.
        var cur = graph.Input(MelInput, GgmlElementType.F32, 2 * encodedFrames, whisper.MelBins);

        // Convolutional front end: [time, channels] throughout, then transposed to [width, frames] for the blocks.
        cur = graph.GeluErf(graph.Add(graph.Conv1d(_weights[Prefix + "conv1.weight"], cur, stride: 1, padding: 1), ColumnBias(graph, "conv1.bias")));
        cur = graph.GeluErf(graph.Add(graph.Conv1d(_weights[Prefix + "conv2.weight"], cur, stride: 2, padding: 1), ColumnBias(graph, "conv2.bias")));
        cur = graph.Cont(graph.Transpose(cur));
        cur = graph.Add(cur, graph.Rows(_weights[Prefix + "positional_embedding"], 0, encodedFrames));

        for (int layer = 0; layer < whisper.LayerCount; layer++)
        {
            string block = $"{Prefix}blocks.{layer}.";
            cur = graph.Add(cur, SelfAttention(graph, LayerNorm(graph, cur, block + "attn_ln"), block + "attn.", encodedFrames));
            var hidden = graph.GeluErf(Linear(graph, LayerNorm(graph, cur, block + "mlp_ln"), block + "mlp.0"));
            cur = graph.Add(cur, Linear(graph, hidden, block + "mlp.2"));
        }

        cur = LayerNorm(graph, cur, Prefix + "ln_post");
        var features = graph.Output(FeaturesOutput, graph.Cont(graph.Rows(cur, 0, keptFrames)));
        graph.Output(AdapterOutput, Adapter(graph, features));
    }

    private GgmlTensor Adapter(GgmlGraphBuilder graph, GgmlTensor features)
    {
        if (_parameters.AdapterType == "mlp")
        {
            return graph.Add(graph.MulMat(_weights["whisper_adapter.weight"], features), _weights["whisper_adapter.bias"]);
        }

        // llamamlp: proj(silu(fc_1 x) * fc_2 x), no biases.
        var gate = graph.Silu(graph.MulMat(_weights["whisper_adapter.fc_1.weight"], features));
        var up = graph.MulMat(_weights["whisper_adapter.fc_2.weight"], features);
        return graph.MulMat(_weights["whisper_adapter.proj.weight"], graph.Mul(gate, up));
    }

    private GgmlTensor SelfAttention(GgmlGraphBuilder graph, GgmlTensor x, string prefix, int frames)
    {
        var whisper = _parameters.Whisper;
        int headSize = whisper.Width / whisper.HeadCount;
        var query = Linear(graph, x, prefix + "query");
        var key = graph.MulMat(_weights[prefix + "key.weight"], x); // Whisper's key has no bias.
        var value = Linear(graph, x, prefix + "value");

        // [width, frames] -> [head size, frames, heads]: one attention matrix per head.
        GgmlTensor SplitHeads(GgmlTensor t) => graph.Cont(graph.Permute(graph.Reshape(t, headSize, whisper.HeadCount, frames), 0, 2, 1, 3));
        if (_fusedAttention)
        {
            // Quantized weights already cost the last digits: fused f16 attention is faster and as close.
            var fused = graph.FlashAttention(SplitHeads(query), graph.Cast(SplitHeads(key), GgmlElementType.F16), graph.Cast(SplitHeads(value), GgmlElementType.F16), 1f / MathF.Sqrt(headSize));
            return Linear(graph, graph.Reshape(fused, whisper.Width, frames), prefix + "out");
        }

        var scores = graph.SoftMax(graph.MulMat(SplitHeads(key), SplitHeads(query)), 1f / MathF.Sqrt(headSize));
        // Values as [frames, head size, heads] so the product runs over key frames.
        var valuesByFrame = graph.Cont(graph.Permute(graph.Reshape(value, headSize, whisper.HeadCount, frames), 1, 2, 0, 3));
        var attended = graph.MulMat(valuesByFrame, scores); // [head size, query frames, heads]
        var merged = graph.Reshape(graph.Cont(graph.Permute(attended, 0, 2, 1, 3)), whisper.Width, frames);
        return Linear(graph, merged, prefix + "out");
    }

    private GgmlTensor LayerNorm(GgmlGraphBuilder graph, GgmlTensor x, string prefix) =>
        graph.Add(graph.Mul(graph.Norm(x, AudioModelParameters.WhisperNormEpsilon), _weights[prefix + ".weight"]), _weights[prefix + ".bias"]);

    private GgmlTensor Linear(GgmlGraphBuilder graph, GgmlTensor x, string prefix) =>
        graph.Add(graph.MulMat(_weights[prefix + ".weight"], x), _weights[prefix + ".bias"]);

    // A per-channel bias for [time, channels] activations: [channels] seen as [1, channels].
    private GgmlTensor ColumnBias(GgmlGraphBuilder graph, string name)
    {
        var bias = _weights[Prefix + name];
        return graph.Reshape(bias, 1, bias.Ne0);
    }
}
