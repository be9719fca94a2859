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
}

/// <summary>The positions of one decode: embeddings with their position and sequence, and which heads each wants.</summary>
/// <remarks>LLamaSharp's batch keeps its rows to itself; this one lets the scheduler's tests see what was decoded.</remarks>
internal sealed class BackboneBatch(int embeddingLength)
{
    private readonly List<BackboneRow> _rows = [];

    /// <summary>The batch as LLamaSharp decodes it.</summary>
    public LLamaBatchEmbeddings Native { get; } = new(embeddingLength);

    /// <summary>The positions added so far.</summary>
    public int EmbeddingsCount => _rows.Count;

    /// <summary>Each added position, in batch order.</summary>
    public IReadOnlyList<BackboneRow> Rows => _rows;

    /// <summary>Adds one position; its logits, if it wants any <paramref name="heads"/>, are read back by its index in the batch.</summary>
    public void Add(ReadOnlySpan<float> embedding, LLamaPos position, LLamaSeqId sequence, OutputHeadSet heads)
    {
        _rows.Add(new BackboneRow(sequence.Value, position.Value, heads));
        // In embeddings mode llama.cpp outputs every position of a batch whatever it is asked (and warns when asked
        // otherwise); the hidden states are a row copy each, and only the positions that want heads are read.
        Native.Add(embedding, position, sequence, logits: true);
    }

    /// <summary>Empties the batch for the next decode.</summary>
    public void Clear()
    {
        _rows.Clear();
        Native.Clear();
    }
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

    /// <summary>Decodes <paramref name="batch"/> and computes the heads its positions ask for; a failure (e.g. no room left in the cache) is an exception naming the cause.</summary>
    void Decode(BackboneBatch batch);

    /// <summary>The logits of the <paramref name="batchIndex"/>-th position of the last decoded batch, valid until the next decode.</summary>
    RowLogits Logits(int batchIndex);

    /// <summary>Shares positions [<paramref name="from"/>, <paramref name="to"/>) of one sequence's cache with another.</summary>
    void CopySequence(LLamaSeqId source, LLamaSeqId destination, int from, int to);

    /// <summary>Frees a sequence's cache.</summary>
    void RemoveSequence(LLamaSeqId sequence);
}

/// <summary>
/// The Qwen2 transformer as llama.cpp runs it through LLamaSharp, fed embeddings rather than token ids, followed by
/// Mini-Omni's <see cref="OutputHeads"/>. llama.cpp's model has no real head (a one-row stand-in): it returns the
/// normed hidden states, and the heads compute only the rows each position's step samples. One context holds every
/// active sequence so that a step of all of them is one decode call.
/// </summary>
internal sealed class Backbone : IBackbone, IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly OutputHeads _heads;
    private readonly List<OutputHeadSet> _wanted = [];
    private RowLogits[] _logits = [];
    private int[] _logitsOfRow = [];
    private int _rowsWithLogits;
    private float[] _hidden = [];

    private Backbone(LLamaWeights weights, LLamaContext context, OutputHeads heads, BackboneOptions options)
    {
        _weights = weights;
        _context = context;
        _heads = heads;
        Options = options;
    }

    /// <summary>The options the context was created with.</summary>
    public BackboneOptions Options { get; }

    /// <summary>The embedding width.</summary>
    public int EmbeddingLength => _weights.EmbeddingSize;

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
            SeqMax = options.MaxSequences,
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

    /// <summary>Decodes <paramref name="batch"/> and computes the heads its positions ask for.</summary>
    public void Decode(BackboneBatch batch)
    {
        DecodeHiddenStates(batch);
        int width = EmbeddingLength;
        int rows = batch.EmbeddingsCount;
        if (_logitsOfRow.Length < rows)
        {
            _logitsOfRow = new int[rows];
            _hidden = new float[rows * width];
        }

        // The hidden states of the positions that want heads, packed in batch order.
        _wanted.Clear();
        for (int row = 0; row < rows; row++)
        {
            _logitsOfRow[row] = -1;
            if (batch.Rows[row].WantsLogits)
            {
                _logitsOfRow[row] = _wanted.Count;
                _context.NativeHandle.GetEmbeddingsIth((LLamaPos)row).CopyTo(_hidden.AsSpan(_wanted.Count * width, width));
                _wanted.Add(batch.Rows[row].Heads);
            }
        }

        _logits = _wanted.Count == 0 ? [] : _heads.Compute(_hidden.AsSpan(0, _wanted.Count * width), _wanted);
        _rowsWithLogits = rows;
    }

    /// <summary>Runs llama.cpp alone: the hidden states of the positions that want logits, no heads (the benchmark's bare decode).</summary>
    public void DecodeHiddenStates(BackboneBatch batch)
    {
        if (batch.EmbeddingsCount > Options.BatchSize)
        {
            throw new ArgumentException($"A batch of {batch.EmbeddingsCount} positions exceeds the backbone's batch size of {Options.BatchSize}.", nameof(batch));
        }

        // Until the heads have run on this batch, no position has logits (a larger earlier batch's mapping included).
        _rowsWithLogits = 0;
        var result = _context.Decode(batch.Native);
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException(result == DecodeResult.NoKvSlot
                ? $"llama.cpp found no room in the KV cache ({Options.ContextSize} positions) for the batch."
                : $"llama.cpp could not decode the batch ({result}).");
        }
    }

    /// <summary>The logits of the <paramref name="batchIndex"/>-th position of the last decoded batch (it must have asked for some).</summary>
    public RowLogits Logits(int batchIndex) =>
        batchIndex >= 0 && batchIndex < _rowsWithLogits && _logitsOfRow[batchIndex] >= 0
            ? _logits[_logitsOfRow[batchIndex]]
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
}
