using System.Buffers;
using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles;

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

/// <summary>The positions of one decode: embeddings with their position and sequence, and which want logits.</summary>
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

    /// <summary>Adds one position; its logits are read back by its index in the batch.</summary>
    public void Add(ReadOnlySpan<float> embedding, LLamaPos position, LLamaSeqId sequence, bool logits)
    {
        _rows.Add(new BackboneRow(sequence.Value, position.Value, logits));
        Native.Add(embedding, position, sequence, logits);
    }

    /// <summary>Empties the batch for the next decode.</summary>
    public void Clear()
    {
        _rows.Clear();
        Native.Clear();
    }
}

/// <summary>One position of a <see cref="BackboneBatch"/>.</summary>
internal readonly record struct BackboneRow(int Sequence, int Position, bool WantsLogits);

/// <summary>What the decode scheduler needs of the backbone; a seam for scripted backbones in tests.</summary>
internal interface IBackbone
{
    /// <summary>The options the context was created with.</summary>
    BackboneOptions Options { get; }

    /// <summary>The embedding width.</summary>
    int EmbeddingLength { get; }

    /// <summary>Decodes <paramref name="batch"/>; a failure (e.g. no room left in the cache) is an exception naming the cause.</summary>
    void Decode(BackboneBatch batch);

    /// <summary>The logits of the <paramref name="batchIndex"/>-th position of the last decoded batch, valid until the next decode.</summary>
    ReadOnlyMemory<float> Logits(int batchIndex);

    /// <summary>Shares positions [<paramref name="from"/>, <paramref name="to"/>) of one sequence's cache with another.</summary>
    void CopySequence(LLamaSeqId source, LLamaSeqId destination, int from, int to);

    /// <summary>Frees a sequence's cache.</summary>
    void RemoveSequence(LLamaSeqId sequence);
}

/// <summary>
/// The Qwen2 backbone as llama.cpp runs it through LLamaSharp, fed embeddings rather than token ids. One context
/// holds every active sequence so that a step of all of them is one decode call.
/// </summary>
internal sealed class Backbone : IBackbone, IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;

    private Backbone(LLamaWeights weights, LLamaContext context, BackboneOptions options)
    {
        _weights = weights;
        _context = context;
        Options = options;
    }

    /// <summary>The options the context was created with.</summary>
    public BackboneOptions Options { get; }

    /// <summary>The embedding width.</summary>
    public int EmbeddingLength => _weights.EmbeddingSize;

    /// <summary>Logit rows per output position.</summary>
    public int VocabularySize => _weights.Vocab.Count;

    /// <summary>Loads <paramref name="path"/> and creates its context.</summary>
    public static Backbone Load(string path, BackboneOptions options, ILogger? logger = null)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
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
            return new Backbone(weights, weights.CreateContext(parameters, logger), options);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Tokenizes text as the release does: no BOS; special tokens (e.g. ChatML's markers) only when <paramref name="special"/>.</summary>
    public int[] Tokenize(string text, bool special = false) => [.. _weights.Tokenize(text, add_bos: false, special, System.Text.Encoding.UTF8).Select(t => (int)t)];

    /// <summary>A detokenizer that only returns whole UTF-8 characters, for streaming text.</summary>
    public StreamingTokenDecoder CreateTextDecoder() => new(System.Text.Encoding.UTF8, _weights) { DecodeSpecialTokens = false };

    /// <summary>Creates an empty batch sized for this backbone.</summary>
    public BackboneBatch CreateBatch() => new(EmbeddingLength);

    /// <summary>Decodes <paramref name="batch"/>; a failure (e.g. no room left in the cache) is an exception naming the cause.</summary>
    public void Decode(BackboneBatch batch)
    {
        if (batch.EmbeddingsCount > Options.BatchSize)
        {
            throw new ArgumentException($"A batch of {batch.EmbeddingsCount} positions exceeds the backbone's batch size of {Options.BatchSize}.", nameof(batch));
        }

        var result = _context.Decode(batch.Native);
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException(result == DecodeResult.NoKvSlot
                ? $"llama.cpp found no room in the KV cache ({Options.ContextSize} positions) for the batch."
                : $"llama.cpp could not decode the batch ({result}).");
        }
    }

    /// <summary>The logits of the <paramref name="batchIndex"/>-th position of the last decoded batch (it must have asked for logits).</summary>
    public ReadOnlyMemory<float> Logits(int batchIndex) => new NativeFloats(_context.NativeHandle.GetLogitsIth(batchIndex)).Memory;

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
    }
}

/// <summary>Native floats seen as <see cref="Memory{T}"/> without a copy; valid as long as llama.cpp keeps them.</summary>
internal sealed unsafe class NativeFloats : MemoryManager<float>
{
    private readonly float* _pointer;
    private readonly int _length;

    public NativeFloats(Span<float> native)
    {
        _pointer = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(native));
        _length = native.Length;
    }

    public override Span<float> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
