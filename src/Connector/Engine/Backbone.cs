using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Engine;

/// <summary>How the backbone's llama.cpp context is set up.</summary>
internal sealed record BackboneOptions
{
    /// <summary>Positions the KV cache holds, shared by all sequences.</summary>
    public uint ContextSize { get; init; } = 4096;

    /// <summary>Sequences decoded together (two per batch-parallel request).</summary>
    public uint MaxSequences { get; init; } = 8;

    /// <summary>
    /// Sequences beyond the answers' (after the scratch sequence): rows that yield to answers (a question's transcript
    /// beside its answer) and the prompt cache's kept prefixes.
    /// </summary>
    public uint SideSequences { get; init; }

    /// <summary>The first side sequence's id (the answers' come first, then the scratch sequence).</summary>
    public int FirstSideSequence => (int)MaxSequences + 1;

    /// <summary>Positions per decode call (the prefill of a long question is split into batches of this size).</summary>
    public uint BatchSize { get; init; } = 512;

    /// <summary>KV cache element type: F16 (default, ~2e-3 from the reference) or F32 (~1e-5, for parity).</summary>
    public GGMLType CacheType { get; init; } = GGMLType.GGML_TYPE_F16;

    /// <summary>CPU threads for single-position decodes; null uses every core (LLamaSharp's own default is half of them).</summary>
    public int? Threads { get; init; }

    /// <summary>CPU threads for decodes of several positions (prompts, several answers' steps); null uses <see cref="Threads"/>.</summary>
    public int? BatchThreads { get; init; }

    /// <summary>Layers offloaded to a GPU when the backend has one.</summary>
    public int GpuLayerCount { get; init; } = 999;

    /// <summary>How the step rows of several answers are grouped into decodes (<see cref="DecodeCosts"/>).</summary>
    public StepDecodePolicy StepDecodePolicy { get; init; } = StepDecodePolicy.Measured;
}

/// <summary>The positions of one decode: embeddings with their position and sequence, and which heads each wants.</summary>
/// <remarks>
/// LLamaSharp's batch keeps its rows to itself; this one keeps them readable, so the scheduler's tests can see what was
/// decoded and the backbone can split a step's rows over several llama.cpp decodes.
/// </remarks>
internal sealed class BackboneBatch(int embeddingLength)
{
    private readonly List<BackboneRow> _rows = [];
    private float[] _embeddings = new float[embeddingLength * 4];

    /// <summary>The width of each embedding.</summary>
    public int EmbeddingLength { get; } = embeddingLength;

    /// <summary>The positions added so far.</summary>
    public int EmbeddingsCount => _rows.Count;

    /// <summary>Each added position, in batch order.</summary>
    public IReadOnlyList<BackboneRow> Rows => _rows;

    /// <summary>Adds one position; its logits, if it wants any <paramref name="heads"/>, are read back by its index in the batch.</summary>
    public void Add(ReadOnlySpan<float> embedding, LLamaPos position, LLamaSeqId sequence, OutputHeadSet heads)
    {
        if (embedding.Length != EmbeddingLength)
        {
            throw new ArgumentException($"An embedding of {embedding.Length} values for a backbone {EmbeddingLength} wide.", nameof(embedding));
        }

        if (_embeddings.Length < (_rows.Count + 1) * EmbeddingLength)
        {
            Array.Resize(ref _embeddings, 2 * _embeddings.Length);
        }

        embedding.CopyTo(_embeddings.AsSpan(_rows.Count * EmbeddingLength));
        _rows.Add(new BackboneRow(sequence.Value, position.Value, heads));
    }

    /// <summary>The embedding of the <paramref name="index"/>-th position.</summary>
    public ReadOnlySpan<float> Embedding(int index) => _embeddings.AsSpan(index * EmbeddingLength, EmbeddingLength);

    /// <summary>Whether every position belongs to a sequence of its own (a batch of steps, no prompt).</summary>
    public bool IsStepsOnly()
    {
        var sequences = new HashSet<int>();
        return _rows.All(row => sequences.Add(row.Sequence));
    }

    /// <summary>Drops the positions added after the first <paramref name="count"/>.</summary>
    public void Truncate(int count) => _rows.RemoveRange(count, _rows.Count - count);

    /// <summary>Empties the batch for the next decode.</summary>
    public void Clear() => _rows.Clear();
}

/// <summary>One position of a <see cref="BackboneBatch"/>.</summary>
internal readonly record struct BackboneRow(int Sequence, int Position, OutputHeadSet Heads)
{
    /// <summary>Whether the position wants logits at all.</summary>
    public bool WantsLogits => Heads != OutputHeadSet.None;
}

/// <summary>What the decode scheduler needs of the backbone and its heads; a seam for scripted backbones in tests.</summary>
internal interface IBackbone
{
    /// <summary>The options the context was created with.</summary>
    BackboneOptions Options { get; }

    /// <summary>The embedding width.</summary>
    int EmbeddingLength { get; }

    /// <summary>What decodes cost on this machine, once <see cref="MeasureNextCost"/> has measured them (nominal before).</summary>
    DecodeCosts Costs { get; }

    /// <summary>Time spent in the output heads so far (a part of <see cref="Decode"/>).</summary>
    TimeSpan HeadsTime { get; }

    /// <summary>
    /// Measures the next size of decode for <see cref="Costs"/> (a few decodes of the scratch sequence, tenths of a second
    /// at most), on the thread that decodes, while the cache is otherwise empty. Returns whether sizes remain.
    /// </summary>
    bool MeasureNextCost();

    /// <summary>
    /// Decodes <paramref name="batch"/> (in one llama.cpp decode or, for a batch of steps, in the decodes <see cref="Costs"/>
    /// plans) and computes the heads its positions ask for in one graph. A failure (e.g. no room left in the cache) is an
    /// exception naming the cause; part of the batch may have reached the cache, so the sequences involved must be removed.
    /// </summary>
    void Decode(BackboneBatch batch);

    /// <summary>The logits of the <paramref name="batchIndex"/>-th position of the last decoded batch, valid until the next decode.</summary>
    RowLogits Logits(int batchIndex);

    /// <summary>The normed hidden state the heads read for the <paramref name="batchIndex"/>-th position of the last decoded batch.</summary>
    ReadOnlyMemory<float> HiddenState(int batchIndex);

    /// <summary>Shares positions [<paramref name="from"/>, <paramref name="to"/>) of one sequence's cache with another.</summary>
    void CopySequence(LLamaSeqId source, LLamaSeqId destination, int from, int to);

    /// <summary>Frees a sequence's cache.</summary>
    void RemoveSequence(LLamaSeqId sequence);
}

/// <summary>
/// The Qwen2 transformer as llama.cpp runs it through LLamaSharp, fed embeddings rather than token ids, followed by
/// Mini-Omni's <see cref="OutputHeads"/>. llama.cpp's model has no real head (a one-row stand-in): it returns the
/// normed hidden states, and the heads compute only the rows each position's step samples, for every position of a
/// batch in one graph. One context holds every active sequence, plus one scratch sequence for padding rows.
/// </summary>
internal sealed class Backbone : IBackbone, IDisposable
{
    // Decodes per size when measuring costs (after one warm-up), and the prompt length measured.
    private const int CalibrationRepeats = 3;
    private const int CalibrationPromptPositions = 32;

    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly OutputHeads _heads;
    private readonly LLamaBatchEmbeddings _native;
    private readonly LLamaSeqId _scratch;
    private readonly List<OutputHeadSet> _wanted = [];
    private RowLogits[] _logits = [];
    private int[] _logitsOfRow = [];
    private int _rowsWithLogits;
    private float[] _hidden = [];
    private float[] _padding = [];
    private float[] _calibration = [];
    private readonly List<double> _measuredSteps = [];
    private long _headsTicks;

    private Backbone(LLamaWeights weights, LLamaContext context, OutputHeads heads, BackboneOptions options)
    {
        _weights = weights;
        _context = context;
        _heads = heads;
        Options = options;
        _native = new LLamaBatchEmbeddings(weights.EmbeddingSize);
        _scratch = (LLamaSeqId)(int)options.MaxSequences;
        Costs = DecodeCosts.Nominal((int)options.MaxSequences, options.StepDecodePolicy);
    }

    /// <summary>The options the context was created with.</summary>
    public BackboneOptions Options { get; }

    /// <summary>The embedding width.</summary>
    public int EmbeddingLength => _weights.EmbeddingSize;

    /// <inheritdoc />
    public DecodeCosts Costs { get; set; }

    /// <summary>The output heads the backbone computes after each decode.</summary>
    public OutputHeads Heads => _heads;

    /// <inheritdoc />
    public TimeSpan HeadsTime => TimeSpan.FromTicks(Volatile.Read(ref _headsTicks));

    /// <summary>
    /// Loads the headless backbone <paramref name="path"/> and creates its context. Once loaded, the backbone owns
    /// <paramref name="heads"/> and disposes them with itself; if loading fails they stay the caller's.
    /// </summary>
    public static Backbone Load(string path, OutputHeads heads, BackboneOptions options, ILogger? logger = null)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        using (var file = GgufFile.Open(path))
        {
            if (!file.Metadata.ContainsKey(MiniOmniGgufKeys.HeadlessBackbone))
            {
                throw new ModelFileException(path, "this backbone was converted by an earlier version of MiniOmni.SK, with the output head inside; convert the model again (`miniomni convert`).");
            }

            // llama.cpp asserts on some inconsistent files instead of failing the load: nothing reaches it unchecked.
            long width = Qwen2GgufChecks.CheckBackbone(file).EmbeddingLength;
            if (width != heads.EmbeddingLength)
            {
                throw new ModelFileException(path, $"the backbone is {width} wide; the output head expects {heads.EmbeddingLength}.");
            }
        }

        var parameters = new ModelParams(path)
        {
            GpuLayerCount = options.GpuLayerCount,
            ContextSize = options.ContextSize,
            BatchSize = options.BatchSize,
            UBatchSize = options.BatchSize,
            // One more than the answers use (the scratch sequence that pads a decode to a cheaper size), then the side sequences.
            SeqMax = options.MaxSequences + 1 + options.SideSequences,
            TypeK = options.CacheType,
            TypeV = options.CacheType,
            // llama.cpp's CPU flash attention rounds queries through f16 (3e-3 from the reference even with an f32 cache).
            FlashAttention = options.CacheType == GGMLType.GGML_TYPE_F32 ? false : null,
            // One cache shared by all sequences, so a prompt prefix can be copied from one sequence to another.
            KVUnified = true,
            // The normed hidden state of each output position, not pooled: the heads are computed from it.
            Embeddings = true,
            PoolingType = LLamaPoolingType.None,
            Threads = options.Threads ?? Environment.ProcessorCount,
            BatchThreads = options.BatchThreads ?? options.Threads ?? Environment.ProcessorCount,
        };
        LLamaWeights weights;
        try
        {
            weights = LLamaWeights.LoadFromFile(parameters);
        }
        catch (Exception e) when (e is LLama.Exceptions.LoadWeightsFailedException or LLama.Exceptions.RuntimeError)
        {
            throw new ModelFileException(path, $"llama.cpp could not load the backbone: {e.Message}", innerException: e);
        }

        try
        {
            return new Backbone(weights, weights.CreateContext(parameters, logger), heads, options);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Creates an empty batch sized for this backbone.</summary>
    public BackboneBatch CreateBatch() => new(EmbeddingLength);

    /// <summary>
    /// Measures the cost of the next decode size: 1 to <see cref="BackboneOptions.MaxSequences"/> rows, then a prompt,
    /// each a few decodes of the scratch sequence alone (the rows' matrix products cost what rows of as many sequences
    /// cost); then the heads' products (<see cref="OutputHeads.MeasureNextCost"/>). Once every size is measured,
    /// <see cref="Decode"/> splits steps, and the heads their products, as this model type runs fastest here.
    /// Call it while no answer holds the cache: the prompt measurement takes more cells than the scratch margin.
    /// </summary>
    /// <returns>Whether sizes remain to be measured.</returns>
    public bool MeasureNextCost()
    {
        int maxRows = (int)Math.Min(Options.MaxSequences, Options.BatchSize);
        if (Options.StepDecodePolicy != StepDecodePolicy.Measured)
        {
            return false;
        }

        // The decodes first, then the heads' products.
        if (_measuredSteps.Count > maxRows)
        {
            return _heads.MeasureNextCost();
        }

        if (_calibration.Length != EmbeddingLength)
        {
            var random = new Random(1);
            _calibration = [.. Enumerable.Range(0, EmbeddingLength).Select(_ => (float)(random.NextDouble() - 0.5) * 0.02f)];
        }

        // Steps of 1..maxRows rows, then a prompt of CalibrationPromptPositions.
        bool prompt = _measuredSteps.Count == maxRows;
        int rows = prompt ? (int)Math.Min(CalibrationPromptPositions, Options.BatchSize) : _measuredSteps.Count + 1;
        var times = new double[CalibrationRepeats + 1];
        for (int repeat = 0; repeat < times.Length; repeat++)
        {
            _native.Clear();
            for (int row = 0; row < rows; row++)
            {
                _native.Add(_calibration, (LLamaPos)row, _scratch, logits: true);
            }

            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                DecodeNative();
            }
            finally
            {
                RemoveSequence(_scratch);
            }

            times[repeat] = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }

        // The first is a warm-up; the median of the rest.
        var measured = times[1..];
        Array.Sort(measured);
        double milliseconds = Math.Max(1e-3, measured[measured.Length / 2]);
        _measuredSteps.Add(prompt ? milliseconds / rows : milliseconds);
        if (!prompt)
        {
            return true;
        }

        Costs = new DecodeCosts(_measuredSteps[..maxRows], _measuredSteps[maxRows], StepDecodePolicy.Measured);
        return true;
    }

    /// <summary>Decodes <paramref name="batch"/> and computes the heads its positions ask for (see <see cref="IBackbone.Decode"/>).</summary>
    public void Decode(BackboneBatch batch)
    {
        DecodeHiddenStates(batch);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        _logits = _wanted.Count == 0 ? [] : _heads.Compute(_hidden.AsSpan(0, _wanted.Count * EmbeddingLength), _wanted);
        Interlocked.Add(ref _headsTicks, System.Diagnostics.Stopwatch.GetElapsedTime(started).Ticks);
        _rowsWithLogits = batch.EmbeddingsCount;
    }

    /// <summary>
    /// Runs llama.cpp alone, in the decodes the costs plan: the hidden states of the positions that want logits are
    /// kept for the heads, which are not computed (the benchmark's bare decode).
    /// </summary>
    public void DecodeHiddenStates(BackboneBatch batch)
    {
        if (batch.EmbeddingsCount > Options.BatchSize)
        {
            throw new ArgumentException($"A batch of {batch.EmbeddingsCount} positions exceeds the backbone's batch size of {Options.BatchSize}.", nameof(batch));
        }

        // Until the heads have run on this batch, no position has logits (a larger earlier batch's mapping included).
        _rowsWithLogits = 0;
        int rows = batch.EmbeddingsCount;
        int width = EmbeddingLength;
        if (_logitsOfRow.Length < rows)
        {
            _logitsOfRow = new int[rows];
            _hidden = new float[rows * width];
        }

        _wanted.Clear();
        for (int row = 0; row < rows; row++)
        {
            _logitsOfRow[row] = -1;
            if (batch.Rows[row].WantsLogits)
            {
                _logitsOfRow[row] = _wanted.Count;
                _wanted.Add(batch.Rows[row].Heads);
            }
        }

        // A prompt (a sequence with several positions) goes in one decode with whatever else the batch holds; a batch of
        // steps as the costs plan it.
        IReadOnlyList<StepDecode> plan = batch.IsStepsOnly() ? Costs.Plan(rows) : [new StepDecode(rows, 0)];
        int first = 0;
        foreach (var decode in plan)
        {
            _native.Clear();
            for (int row = first; row < first + decode.Rows; row++)
            {
                var position = batch.Rows[row];
                // In embeddings mode llama.cpp outputs every position of a batch whatever it is asked (and warns when
                // asked otherwise); the hidden states are a row copy each, and only the positions that want heads are read.
                _native.Add(batch.Embedding(row), (LLamaPos)position.Position, (LLamaSeqId)position.Sequence, logits: true);
            }

            if (decode.Padding > 0 && _padding.Length != width)
            {
                _padding = new float[width];
            }

            for (int pad = 0; pad < decode.Padding; pad++)
            {
                _native.Add(_padding, (LLamaPos)pad, _scratch, logits: true);
            }

            try
            {
                DecodeNative();
                for (int row = first; row < first + decode.Rows; row++)
                {
                    if (_logitsOfRow[row] >= 0)
                    {
                        _context.NativeHandle.GetEmbeddingsIth((LLamaPos)(row - first)).CopyTo(_hidden.AsSpan(_logitsOfRow[row] * width, width));
                    }
                }
            }
            finally
            {
                if (decode.Padding > 0)
                {
                    RemoveSequence(_scratch);
                }
            }

            first += decode.Rows;
        }
    }

    /// <summary>The logits of the <paramref name="batchIndex"/>-th position of the last decoded batch (it must have asked for some).</summary>
    public RowLogits Logits(int batchIndex) =>
        batchIndex >= 0 && batchIndex < _rowsWithLogits && _logitsOfRow[batchIndex] >= 0
            ? _logits[_logitsOfRow[batchIndex]]
            : throw new InvalidOperationException($"Position {batchIndex} of the last batch asked for no logits.");

    /// <summary>The hidden state of the <paramref name="batchIndex"/>-th position of the last decoded batch (it must have asked for logits).</summary>
    public ReadOnlyMemory<float> HiddenState(int batchIndex) =>
        batchIndex >= 0 && batchIndex < _rowsWithLogits && _logitsOfRow[batchIndex] >= 0
            ? _hidden.AsMemory(_logitsOfRow[batchIndex] * EmbeddingLength, EmbeddingLength)
            : throw new InvalidOperationException($"Position {batchIndex} of the last batch asked for no logits.");

    /// <summary>Shares positions [<paramref name="from"/>, <paramref name="to"/>) of one sequence's cache to another.</summary>
    public void CopySequence(LLamaSeqId source, LLamaSeqId destination, int from, int to) =>
        _context.NativeHandle.MemorySequenceCopy(source, destination, (LLamaPos)from, (LLamaPos)to);

    /// <summary>Frees a sequence's cache.</summary>
    public void RemoveSequence(LLamaSeqId sequence) =>
        _context.NativeHandle.MemorySequenceRemove(sequence, (LLamaPos)0, (LLamaPos)(-1));

    /// <inheritdoc />
    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
        _heads.Dispose();
    }

    private void DecodeNative()
    {
        var result = _context.Decode(_native);
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException(result == DecodeResult.NoKvSlot
                ? $"llama.cpp found no room in the KV cache ({Options.ContextSize} positions) for the batch."
                : $"llama.cpp could not decode the batch ({result}).");
        }
    }
}
