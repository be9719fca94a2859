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
            _stage.Reserve(graph => Build(graph, maxPositions, maxPositions));
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
        var inputs = new Dictionary<string, Array>();
        if (textPositions.Length > 0)
        {
            inputs[TextInput] = Gather(hidden, textPositions);
        }

        if (audioPositions.Length > 0)
        {
            inputs[AudioInput] = Gather(hidden, audioPositions);
        }

        // Every step computes up to 181120 logits a position: reuse the arrays rather than allocate large objects each time.
        var outputs = _stage.Run(graph => Build(graph, textPositions.Length, audioPositions.Length), inputs, OutputBuffer);
        int audioRows = RowCount - _textRows;
        var textLogits = textPositions.Length > 0 ? outputs[TextOutput].AsMemory() : default;
        var audioLogits = audioPositions.Length > 0 ? outputs[AudioOutput].AsMemory() : default;
        var result = new RowLogits[heads.Count];
        int textIndex = 0, audioIndex = 0;
        for (int position = 0; position < heads.Count; position++)
        {
            var text = heads[position].HasFlag(OutputHeadSet.Text) ? textLogits.Slice(textIndex++ * _textRows, _textRows) : ReadOnlyMemory<float>.Empty;
            var audio = heads[position].HasFlag(OutputHeadSet.Audio) ? audioLogits.Slice(audioIndex++ * audioRows, audioRows) : ReadOnlyMemory<float>.Empty;
            result[position] = text.IsEmpty ? new RowLogits(_textRows, audio) : new RowLogits(0, text, _textRows, audio);
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

    private float[] Gather(ReadOnlySpan<float> hidden, int[] positions)
    {
        var states = new float[positions.Length * EmbeddingLength];
        for (int i = 0; i < positions.Length; i++)
        {
            hidden.Slice(positions[i] * EmbeddingLength, EmbeddingLength).CopyTo(states.AsSpan(i * EmbeddingLength));
        }

        return states;
    }

    private void Build(GgmlGraphBuilder graph, int textPositions, int audioPositions)
    {
        if (textPositions > 0)
        {
            graph.Output(TextOutput, graph.MulMat(_text, graph.Input(TextInput, GgmlElementType.F32, EmbeddingLength, textPositions)));
        }

        if (audioPositions > 0)
        {
            graph.Output(AudioOutput, graph.MulMat(_audio, graph.Input(AudioInput, GgmlElementType.F32, EmbeddingLength, audioPositions)));
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
