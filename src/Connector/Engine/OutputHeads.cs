using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Engine;

/// <summary>Which of Mini-Omni's heads a position's logits are wanted for.</summary>
[Flags]
internal enum OutputHeadSet
{
    /// <summary>No logits (a prompt position before the last).</summary>
    None = 0,

    /// <summary>The text head: rows [0, text vocabulary).</summary>
    Text = 1,

    /// <summary>The seven audio heads: the rows after the text head.</summary>
    Audio = 2,

    /// <summary>Every head: a speaking row whose text has not ended.</summary>
    TextAndAudio = Text | Audio,
}

/// <summary>
/// The logits computed for one position: a contiguous run of the output head's rows, starting at <see cref="FirstRow"/>.
/// Valid until the backbone's next decode.
/// </summary>
internal readonly struct RowLogits(int firstRow, ReadOnlyMemory<float> values)
{
    /// <summary>The head row of <see cref="Values"/>' first element.</summary>
    public int FirstRow { get; } = firstRow;

    /// <summary>The computed logits.</summary>
    public ReadOnlyMemory<float> Values { get; } = values;

    /// <summary>The logits of the head rows <paramref name="head"/>; they must have been computed.</summary>
    public ReadOnlySpan<float> this[Range head]
    {
        get
        {
            int end = FirstRow + Values.Length;
            var (start, length) = head.GetOffsetAndLength(int.MaxValue);
            if (start < FirstRow || start + length > end)
            {
                throw new InvalidOperationException($"Head rows [{start}, {start + length}) were not computed for this position (it has [{FirstRow}, {end})).");
            }

            return Values.Span.Slice(start - FirstRow, length);
        }
    }
}

/// <summary>
/// Mini-Omni's output heads, <c>lm_head</c> over the backbone's normed hidden states, as a ggml graph. The heads are
/// one matrix of 181120 rows (text, then seven audio layers); each position computes only the rows its step samples:
/// a batch-parallel speaking row only the audio heads, its thinking row only the text head, a speaking row whose text
/// has ended only the audio heads, a text answer only the text head. Positions wanting the same heads share one
/// matrix product. One caller at a time (the decode scheduler's thread): results are valid until the next call.
/// </summary>
internal sealed class OutputHeads : IDisposable
{
    private const string WeightName = "output.weight";

    private readonly GgmlStage _stage;
    private readonly GgmlWeights _weights;
    private readonly int _textRows;
    private readonly Dictionary<string, float[]> _outputBuffers = [];

    /// <summary>Uploads <c>output.weight</c> of <paramref name="vocabularyFile"/> and reserves compute memory for <paramref name="maxPositions"/> positions.</summary>
    public OutputHeads(GgufFile vocabularyFile, MiniOmniVocabulary vocabulary, GgmlComputeOptions options, int maxPositions, ILogger? logger = null)
    {
        var head = vocabularyFile.GetTensor(WeightName);
        if (head.Dims.Count != 2 || head.Dims[1] != vocabulary.RowCount || vocabulary.TextVocabularySize >= vocabulary.RowCount)
        {
            throw new ModelFileException(vocabularyFile.Path, $"the output head is [{string.Join(", ", head.Dims)}]; the audio file expects {vocabulary.RowCount} rows of which {vocabulary.TextVocabularySize} are text.", WeightName);
        }

        EmbeddingLength = (int)head.Dims[0];
        RowCount = vocabulary.RowCount;
        _textRows = vocabulary.TextVocabularySize;
        _stage = new GgmlStage("output heads", options, maxNodes: 64, logger: logger);
        try
        {
            _weights = GgmlWeights.Load(vocabularyFile, name => name == WeightName, _stage.PrimaryBackend);
            _stage.Reserve(graph => Build(graph, [(OutputHeadSet.TextAndAudio, maxPositions)]));
        }
        catch
        {
            _weights?.Dispose();
            _stage.Dispose();
            throw;
        }
    }

    /// <summary>The hidden state width.</summary>
    public int EmbeddingLength { get; }

    /// <summary>Rows of the whole head.</summary>
    public int RowCount { get; }

    /// <summary>The head rows <paramref name="heads"/> covers, as [first, end).</summary>
    public (int First, int End) RowsOf(OutputHeadSet heads) => heads switch
    {
        OutputHeadSet.Text => (0, _textRows),
        OutputHeadSet.Audio => (_textRows, RowCount),
        OutputHeadSet.TextAndAudio => (0, RowCount),
        _ => throw new ArgumentOutOfRangeException(nameof(heads), heads, "A position asks for the text head, the audio heads or both."),
    };

    /// <summary>
    /// Computes the logits of each position: <paramref name="hidden"/> holds one normed hidden state per entry of
    /// <paramref name="heads"/>, row-major; the result has one <see cref="RowLogits"/> per position, in order.
    /// </summary>
    public RowLogits[] Compute(ReadOnlySpan<float> hidden, IReadOnlyList<OutputHeadSet> heads)
    {
        if (hidden.Length != heads.Count * EmbeddingLength)
        {
            throw new ArgumentException($"{heads.Count} positions need {heads.Count * EmbeddingLength} hidden values; got {hidden.Length}.", nameof(hidden));
        }

        var groups = heads.Select((set, position) => (set, position)).GroupBy(p => p.set).Select(g => (Heads: g.Key, Positions: g.Select(p => p.position).ToArray())).ToList();
        var inputs = new Dictionary<string, Array>();
        foreach (var (set, positions) in groups)
        {
            _ = RowsOf(set); // a position that wants no head is refused before any work
            var states = new float[positions.Length * EmbeddingLength];
            for (int i = 0; i < positions.Length; i++)
            {
                hidden.Slice(positions[i] * EmbeddingLength, EmbeddingLength).CopyTo(states.AsSpan(i * EmbeddingLength));
            }

            inputs[InputName(set)] = states;
        }

        // Every step computes up to 181120 logits a position: reuse the arrays rather than allocate large objects each time.
        var outputs = _stage.Run(graph => Build(graph, [.. groups.Select(g => (g.Heads, g.Positions.Length))]), inputs, OutputBuffer);
        var result = new RowLogits[heads.Count];
        foreach (var (set, positions) in groups)
        {
            var (first, end) = RowsOf(set);
            var logits = outputs[OutputName(set)].AsMemory();
            for (int i = 0; i < positions.Length; i++)
            {
                result[positions[i]] = new RowLogits(first, logits.Slice(i * (end - first), end - first));
            }
        }

        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stage.Dispose();
        _weights.Dispose();
    }

    private void Build(GgmlGraphBuilder graph, IReadOnlyList<(OutputHeadSet Heads, int Positions)> groups)
    {
        var weight = _weights[WeightName];
        foreach (var (set, positions) in groups)
        {
            var (first, end) = RowsOf(set);
            var states = graph.Input(InputName(set), GgmlElementType.F32, EmbeddingLength, positions);
            // The head's rows are ggml's second dimension: a run of them is a view, no copy.
            graph.Output(OutputName(set), graph.MulMat(graph.Rows(weight, first, end - first), states));
        }
    }

    private float[] OutputBuffer(string name, long length)
    {
        if (!_outputBuffers.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            _outputBuffers[name] = buffer = new float[length];
        }

        return buffer;
    }

    private static string InputName(OutputHeadSet heads) => $"hidden_{heads}";

    private static string OutputName(OutputHeadSet heads) => $"logits_{heads}";
}
