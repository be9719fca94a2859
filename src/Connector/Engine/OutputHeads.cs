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
/// The logits computed for one position: up to two runs of the output head's rows (the text head's and the audio heads'),
/// each starting at its own first row. Valid until the backbone's next decode.
/// </summary>
internal readonly struct RowLogits
{
    private readonly int _secondRow;
    private readonly ReadOnlyMemory<float> _second;

    /// <summary>Logits of the rows [<paramref name="firstRow"/>, <paramref name="firstRow"/> + length).</summary>
    public RowLogits(int firstRow, ReadOnlyMemory<float> values)
        : this(firstRow, values, firstRow + values.Length, ReadOnlyMemory<float>.Empty)
    {
    }

    /// <summary>Logits of two runs of rows: <paramref name="values"/> from <paramref name="firstRow"/>, <paramref name="secondValues"/> from <paramref name="secondRow"/>.</summary>
    public RowLogits(int firstRow, ReadOnlyMemory<float> values, int secondRow, ReadOnlyMemory<float> secondValues)
    {
        FirstRow = firstRow;
        Values = values;
        _secondRow = secondRow;
        _second = secondValues;
    }

    /// <summary>The head row of <see cref="Values"/>' first element.</summary>
    public int FirstRow { get; }

    /// <summary>The first run of computed logits.</summary>
    public ReadOnlyMemory<float> Values { get; }

    /// <summary>The second run of computed logits (empty when there is one run).</summary>
    public ReadOnlyMemory<float> SecondValues => _second;

    /// <summary>The logits of the head rows <paramref name="head"/>, which must lie within one computed run.</summary>
    public ReadOnlySpan<float> this[Range head]
    {
        get
        {
            var (start, length) = head.GetOffsetAndLength(int.MaxValue);
            if (start >= FirstRow && start + length <= FirstRow + Values.Length)
            {
                return Values.Span.Slice(start - FirstRow, length);
            }

            if (!_second.IsEmpty && start >= _secondRow && start + length <= _secondRow + _second.Length)
            {
                return _second.Span.Slice(start - _secondRow, length);
            }

            string computed = _second.IsEmpty ? $"[{FirstRow}, {FirstRow + Values.Length})" : $"[{FirstRow}, {FirstRow + Values.Length}) and [{_secondRow}, {_secondRow + _second.Length})";
            throw new InvalidOperationException($"Head rows [{start}, {start + length}) were not computed for this position (it has {computed}).");
        }
    }
}

/// <summary>
/// Mini-Omni's output heads, <c>lm_head</c> over the backbone's normed hidden states, as a ggml graph. The head is one
/// matrix of 181120 rows in the file (text, then seven audio layers), held here as two: the text head and the audio
/// heads, so that the text head can be stored in a cheaper type than the audio heads (<see cref="TextHeadType"/>).
/// Each position computes only the heads its step samples: a batch-parallel speaking row only the audio heads, its
/// thinking row only the text head, a speaking row whose text has ended only the audio heads, a text answer only the
/// text head. Every position of a step goes into one graph: one product over the text head for all positions that
/// want text, one over the audio heads for all that want audio. One caller at a time (the decode scheduler's thread):
/// results are valid until the next call.
/// </summary>
internal sealed class OutputHeads : IDisposable
{
    private const string WeightName = "output.weight";
    private const string TextInput = "hidden_text", AudioInput = "hidden_audio", TextOutput = "logits_text", AudioOutput = "logits_audio";
    // Rows requantized at a time when the text head is stored in another type than the file's.
    private const int RowsPerChunk = 2048;

    private readonly GgmlStage _stage;
    private readonly SafeGgmlContextHandle? _context;
    private readonly SafeGgmlBufferHandle? _buffer;
    private readonly GgmlTensor _text;
    private readonly GgmlTensor _audio;
    private readonly int _textRows;
    private readonly Dictionary<string, float[]> _outputBuffers = [];
    private readonly int _maxPositions;
    private readonly List<double> _measured = [];
    private float[] _measuringStates = [];

    /// <summary>Uploads <c>output.weight</c> of <paramref name="vocabularyFile"/> and reserves compute memory for <paramref name="maxPositions"/> positions.</summary>
    /// <param name="vocabularyFile">The vocabulary GGUF holding <c>output.weight</c>.</param>
    /// <param name="vocabulary">The id spaces the audio file states.</param>
    /// <param name="options">Where and on how many threads the graph runs.</param>
    /// <param name="maxPositions">The most positions one call computes.</param>
    /// <param name="logger">Logs the backend chosen.</param>
    /// <param name="textHeadType">
    /// How the text head is held: null as the file stores it, or a type it is quantized to at load (Q4_0, Q8_0). The
    /// audio heads stay as the file stores them.
    /// </param>
    public OutputHeads(GgufFile vocabularyFile, MiniOmniVocabulary vocabulary, GgmlComputeOptions options, int maxPositions, ILogger? logger = null, GgmlType? textHeadType = null)
    {
        var head = vocabularyFile.GetTensor(WeightName);
        if (head.Dims.Count != 2 || head.Dims[1] != vocabulary.RowCount || vocabulary.TextVocabularySize <= 0 || vocabulary.TextVocabularySize >= vocabulary.RowCount)
        {
            throw new ModelFileException(vocabularyFile.Path, $"the output head is [{string.Join(", ", head.Dims)}]; the audio file expects {vocabulary.RowCount} rows of which {vocabulary.TextVocabularySize} are text.", WeightName);
        }

        EmbeddingLength = (int)head.Dims[0];
        RowCount = vocabulary.RowCount;
        _maxPositions = maxPositions;
        TextCosts = AudioCosts = DecodeCosts.Nominal(maxPositions);
        _textRows = vocabulary.TextVocabularySize;
        TextHeadType = textHeadType ?? head.Type;
        var fileType = ElementType(head.Type, vocabularyFile.Path);
        var textType = ElementType(TextHeadType, vocabularyFile.Path);
        if (TextHeadType != head.Type && head.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0))
        {
            throw new ModelFileException(vocabularyFile.Path, $"a {head.Type} head cannot be requantized to {TextHeadType} at load.", WeightName);
        }

        _stage = new GgmlStage("output heads", options, maxNodes: 64, logger: logger);
        try
        {
            _context = SafeGgmlContextHandle.Create(GgmlNative.ggml_tensor_overhead() * 2, noAlloc: true);
            _text = new GgmlTensor(GgmlNative.ggml_new_tensor_2d(_context.DangerousGetHandle(), textType, EmbeddingLength, _textRows));
            _audio = new GgmlTensor(GgmlNative.ggml_new_tensor_2d(_context.DangerousGetHandle(), fileType, EmbeddingLength, RowCount - _textRows));
            GgmlNative.ggml_set_name(_text.Handle, "output.text");
            GgmlNative.ggml_set_name(_audio.Handle, "output.audio");
            _buffer = SafeGgmlBufferHandle.AllocateContextTensors(_context, _stage.PrimaryBackend);
            Upload(vocabularyFile, head);
            _stage.Reserve(graph => Build(graph, [maxPositions], [maxPositions]));
        }
        catch
        {
            _buffer?.Dispose();
            _context?.Dispose();
            _stage.Dispose();
            throw;
        }
    }

    /// <summary>The hidden state width.</summary>
    public int EmbeddingLength { get; }

    /// <summary>Rows of the whole head.</summary>
    public int RowCount { get; }

    /// <summary>How the text head is held (the audio heads stay as the file stores them).</summary>
    public GgmlType TextHeadType { get; }

    /// <summary>
    /// What one product of the text head costs by the number of positions in it, and so how positions are split into
    /// products: ggml multiplies a quantized matrix by one column with its dot products, and by a few columns with a
    /// small-matrix kernel that can cost more than as many one-column products. Nominal (one product) until measured.
    /// </summary>
    public DecodeCosts TextCosts { get; set; }

    /// <summary>As <see cref="TextCosts"/>, for the audio heads.</summary>
    public DecodeCosts AudioCosts { get; set; }

    /// <summary>
    /// Measures the next size of product for <see cref="TextCosts"/> and <see cref="AudioCosts"/>: 1 to the most positions,
    /// text then audio, a few graphs each. Returns whether sizes remain.
    /// </summary>
    public bool MeasureNextCost()
    {
        if (_measured.Count >= 2 * _maxPositions)
        {
            return false;
        }

        if (_measuringStates.Length == 0)
        {
            var random = new Random(2);
            _measuringStates = [.. Enumerable.Range(0, _maxPositions * EmbeddingLength).Select(_ => (float)(random.NextDouble() - 0.5))];
        }

        bool text = _measured.Count < _maxPositions;
        int positions = _measured.Count % _maxPositions + 1;
        OutputHeadSet[] sets = [.. Enumerable.Repeat(text ? OutputHeadSet.Text : OutputHeadSet.Audio, positions)];
        // One product of all positions, however the costs would split them.
        var saved = (TextCosts, AudioCosts);
        TextCosts = AudioCosts = DecodeCosts.Nominal(_maxPositions);
        var times = new double[4];
        try
        {
            for (int repeat = 0; repeat < times.Length; repeat++)
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                Compute(_measuringStates.AsSpan(0, positions * EmbeddingLength), sets);
                times[repeat] = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
        }
        finally
        {
            (TextCosts, AudioCosts) = saved;
        }

        // The first is a warm-up; the median of the rest.
        var measured = times[1..];
        Array.Sort(measured);
        _measured.Add(Math.Max(1e-3, measured[measured.Length / 2]));
        if (_measured.Count == _maxPositions)
        {
            TextCosts = new DecodeCosts(_measured, 1, StepDecodePolicy.Measured, padding: false);
        }
        else if (_measured.Count == 2 * _maxPositions)
        {
            AudioCosts = new DecodeCosts(_measured[_maxPositions..], 1, StepDecodePolicy.Measured, padding: false);
        }

        return _measured.Count < 2 * _maxPositions;
    }

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

        foreach (var set in heads)
        {
            _ = RowsOf(set); // a position that wants no head is refused before any work
        }

        int[] textPositions = [.. Enumerable.Range(0, heads.Count).Where(p => heads[p].HasFlag(OutputHeadSet.Text))];
        int[] audioPositions = [.. Enumerable.Range(0, heads.Count).Where(p => heads[p].HasFlag(OutputHeadSet.Audio))];
        // Each head's positions in the products its costs plan, each product an input and an output of the one graph.
        int[] textProducts = [.. TextCosts.Plan(textPositions.Length).Select(d => d.Rows)];
        int[] audioProducts = [.. AudioCosts.Plan(audioPositions.Length).Select(d => d.Rows)];
        var inputs = new Dictionary<string, Array>();
        AddInputs(inputs, TextInput, hidden, textPositions, textProducts);
        AddInputs(inputs, AudioInput, hidden, audioPositions, audioProducts);

        // Every step computes up to 181120 logits a position: reuse the arrays rather than allocate large objects each time.
        var outputs = _stage.Run(graph => Build(graph, textProducts, audioProducts), inputs, OutputBuffer);
        int audioRows = RowCount - _textRows;
        var text = Slices(outputs, TextOutput, textProducts, _textRows);
        var audio = Slices(outputs, AudioOutput, audioProducts, audioRows);
        var result = new RowLogits[heads.Count];
        int textIndex = 0, audioIndex = 0;
        for (int position = 0; position < heads.Count; position++)
        {
            var textLogits = heads[position].HasFlag(OutputHeadSet.Text) ? text[textIndex++] : ReadOnlyMemory<float>.Empty;
            var audioLogits = heads[position].HasFlag(OutputHeadSet.Audio) ? audio[audioIndex++] : ReadOnlyMemory<float>.Empty;
            result[position] = textLogits.IsEmpty ? new RowLogits(_textRows, audioLogits) : new RowLogits(0, textLogits, _textRows, audioLogits);
        }

        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stage.Dispose();
        _buffer?.Dispose();
        _context?.Dispose();
    }

    // The hidden states of `positions`, one input per product of `products` positions each.
    private void AddInputs(Dictionary<string, Array> inputs, string name, ReadOnlySpan<float> hidden, int[] positions, int[] products)
    {
        int first = 0;
        for (int product = 0; product < products.Length; product++)
        {
            var states = new float[products[product] * EmbeddingLength];
            for (int i = 0; i < products[product]; i++)
            {
                hidden.Slice(positions[first + i] * EmbeddingLength, EmbeddingLength).CopyTo(states.AsSpan(i * EmbeddingLength));
            }

            inputs[$"{name}_{product}"] = states;
            first += products[product];
        }
    }

    // Each position's logits, in order, from the outputs of the products.
    private static List<ReadOnlyMemory<float>> Slices(Dictionary<string, float[]> outputs, string name, int[] products, int rows)
    {
        var slices = new List<ReadOnlyMemory<float>>();
        for (int product = 0; product < products.Length; product++)
        {
            var logits = outputs[$"{name}_{product}"].AsMemory();
            for (int i = 0; i < products[product]; i++)
            {
                slices.Add(logits.Slice(i * rows, rows));
            }
        }

        return slices;
    }

    private void Build(GgmlGraphBuilder graph, int[] textProducts, int[] audioProducts)
    {
        for (int product = 0; product < textProducts.Length; product++)
        {
            graph.Output($"{TextOutput}_{product}", graph.MulMat(_text, graph.Input($"{TextInput}_{product}", GgmlElementType.F32, EmbeddingLength, textProducts[product])));
        }

        for (int product = 0; product < audioProducts.Length; product++)
        {
            graph.Output($"{AudioOutput}_{product}", graph.MulMat(_audio, graph.Input($"{AudioInput}_{product}", GgmlElementType.F32, EmbeddingLength, audioProducts[product])));
        }
    }

    // The audio rows are copied as the file stores them; the text rows too, or requantized a chunk of rows at a time.
    private unsafe void Upload(GgufFile file, GgufTensorInfo head)
    {
        var bytes = file.GetTensorBytes(head);
        long rowBytes = GgmlTypeInfo.ByteSize(head.Type, EmbeddingLength);
        long textBytes = rowBytes * _textRows;
        if (bytes.Length != rowBytes * RowCount)
        {
            throw new ModelFileException(file.Path, $"the output head holds {bytes.Length} bytes; {RowCount} rows of {head.Type} need {rowBytes * RowCount}.", WeightName);
        }

        fixed (byte* audio = bytes[(int)textBytes..])
        {
            GgmlNative.ggml_backend_tensor_set(_audio.Handle, audio, 0, (nuint)(bytes.Length - textBytes));
        }

        if (TextHeadType == head.Type)
        {
            fixed (byte* text = bytes[..(int)textBytes])
            {
                GgmlNative.ggml_backend_tensor_set(_text.Handle, text, 0, (nuint)textBytes);
            }

            return;
        }

        var type = ElementType(TextHeadType, file.Path);
        long quantizedRowBytes = (long)GgmlNative.ggml_row_size(type, EmbeddingLength);
        var values = new float[RowsPerChunk * EmbeddingLength];
        var quantized = new byte[RowsPerChunk * quantizedRowBytes];
        for (int row = 0; row < _textRows; row += RowsPerChunk)
        {
            int rows = Math.Min(RowsPerChunk, _textRows - row);
            var chunk = values.AsSpan(0, rows * EmbeddingLength);
            TensorEncoding.Decode(bytes.Slice((int)(row * rowBytes), (int)(rows * rowBytes)), head.Type, chunk);
            fixed (float* source = chunk)
            fixed (byte* destination = quantized)
            {
                nuint size = GgmlNative.ggml_quantize_chunk(type, source, destination, 0, rows, EmbeddingLength, null);
                GgmlNative.ggml_backend_tensor_set(_text.Handle, destination, (nuint)(row * quantizedRowBytes), size);
            }
        }
    }

    private static GgmlElementType ElementType(GgmlType type, string path) => type switch
    {
        GgmlType.F32 => GgmlElementType.F32,
        GgmlType.F16 => GgmlElementType.F16,
        GgmlType.Q8_0 => GgmlElementType.Q8_0,
        GgmlType.Q4_0 => GgmlElementType.Q4_0,
        GgmlType.IQ4_NL => GgmlElementType.IQ4_NL,
        _ => throw new ModelFileException(path, $"an output head of {type} is not supported (F32, F16, Q8_0, Q4_0 or IQ4_NL).", WeightName),
    };

    private float[] OutputBuffer(string name, long length)
    {
        if (!_outputBuffers.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            _outputBuffers[name] = buffer = new float[length];
        }

        return buffer;
    }
}
