using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>The shape of the Qwen2 backbone, as litgpt's <c>model_config.yaml</c> describes it.</summary>
public sealed record BackboneShape(
    string Name,
    int LayerCount,
    int HeadCount,
    int KvGroupCount,
    int HeadSize,
    int EmbeddingLength,
    int FeedForwardLength,
    float NormEpsilon,
    float RopeBase,
    int RowCount,
    int ContextLength)
{
    /// <summary>Rows of litgpt's fused qkv weight: every query head plus one key and one value per group.</summary>
    public int FusedQkvRows => (HeadCount + 2 * KvGroupCount) * HeadSize;

    /// <summary>Checks what llama.cpp would otherwise assert on at load, naming <paramref name="source"/>.</summary>
    public void Validate(string source)
    {
        ModelLimits.InRange(LayerCount, 1, ModelLimits.MaxLayers, source, "n_layer");
        ModelLimits.InRange(HeadCount, 1, ModelLimits.MaxHeads, source, "n_head");
        ModelLimits.InRange(KvGroupCount, 1, HeadCount, source, "n_query_groups");
        ModelLimits.InRange(HeadSize, 1, ModelLimits.MaxWidth, source, "head_size");
        ModelLimits.InRange(EmbeddingLength, 1, ModelLimits.MaxWidth, source, "n_embd");
        ModelLimits.InRange(FeedForwardLength, 1, ModelLimits.MaxFeedForward, source, "intermediate_size");
        ModelLimits.InRange(RowCount, 1, ModelLimits.MaxVocabulary, source, "padded_vocab_size");
        ModelLimits.InRange(ContextLength, 1, ModelLimits.MaxContext, source, "block_size");
        if (HeadCount % KvGroupCount != 0)
        {
            throw new ModelFileException(source, $"{HeadCount} heads do not divide into {KvGroupCount} query groups.", "n_query_groups");
        }

        if ((long)HeadCount * HeadSize != EmbeddingLength || HeadSize % 2 != 0)
        {
            throw new ModelFileException(source, $"{HeadCount} heads of {HeadSize} are not the width {EmbeddingLength} in pairs of dimensions, as llama.cpp's qwen2 needs.", "head_size");
        }

        if (!(NormEpsilon > 0) || !float.IsFinite(NormEpsilon))
        {
            throw new ModelFileException(source, $"{NormEpsilon} must be a finite number greater than 0.", "norm_eps");
        }

        if (!(RopeBase > 0) || !float.IsFinite(RopeBase))
        {
            throw new ModelFileException(source, $"{RopeBase} must be a finite number greater than 0.", "rope_base");
        }
    }
}

/// <summary>
/// Lays out the backbone for llama.cpp's <c>qwen2</c> architecture as two files. The backbone file holds the
/// transformer blocks and the final norm with a one-row stand-in vocabulary, so llama.cpp computes no output head:
/// the engine reads its normed hidden states and computes only the head rows a step needs in its own graph. The
/// vocabulary file holds the tokenizer (llama.cpp loads it vocabulary-only), the embedding table the embedding mix
/// reads, and the output head. litgpt names are mapped to GGUF names and the fused qkv is split into q, k and v.
/// </summary>
public static class BackboneGgufBuilder
{
    /// <summary>Stand-in vocabulary rows of the backbone file: llama.cpp needs a head, and this one costs nothing.</summary>
    public const int HeadlessVocabularySize = 1;

    /// <summary>litgpt's token embedding table.</summary>
    public const string EmbeddingSourceName = "transformer.wte.weight";

    /// <summary>litgpt's output head, absent or equal to <see cref="EmbeddingSourceName"/> when tied.</summary>
    public const string HeadSourceName = "lm_head.weight";

    /// <summary>
    /// Finds a source tensor and checks it has <c>expectedShape</c> (PyTorch order) at once, returning a reader of its
    /// float32 data for later: a missing or misshapen tensor fails before anything is written.
    /// </summary>
    public delegate Func<float[]> TensorSource(string name, long[] expectedShape);

    /// <summary>Describes the headless backbone in <paramref name="writer"/>; tensor data is read from <paramref name="source"/> as the file is written.</summary>
    public static void DescribeBackbone(GgufWriter writer, BackboneShape shape, TensorSource source, GgmlType matrixType, string sourcePath)
    {
        shape.Validate(sourcePath);
        const string arch = "qwen2";
        AddArchitecture(writer, shape, matrixType);
        // A tokenizer of type "none" takes its row count from the architecture's vocab_size: a head of one row.
        writer.Add("tokenizer.ggml.model", "none")
            .Add($"{arch}.vocab_size", (uint)HeadlessVocabularySize)
            .Add(MiniOmniGgufKeys.HeadlessBackbone, true);

        long e = shape.EmbeddingLength;
        long hs = shape.HeadSize;
        long ff = shape.FeedForwardLength;
        long queryWidth = shape.HeadCount * hs;
        long kvWidth = shape.KvGroupCount * hs;

        // llama.cpp requires a token table; the engine feeds embeddings, so one zero row stands in (and, tied, is the head).
        AddMatrix(writer, "token_embd.weight", [HeadlessVocabularySize, e], matrixType, () => new float[HeadlessVocabularySize * e]);
        for (int layer = 0; layer < shape.LayerCount; layer++)
        {
            string from = $"transformer.h.{layer}.";
            string to = $"blk.{layer}.";
            Vector(writer, to + "attn_norm.weight", e, from + "norm_1.weight", source);

            var qkvWeight = new FusedQkvSplitter(shape, source(from + "attn.attn.weight", [shape.FusedQkvRows, e]), e);
            var qkvBias = new FusedQkvSplitter(shape, source(from + "attn.attn.bias", [shape.FusedQkvRows]), 1);
            AddMatrix(writer, to + "attn_q.weight", [queryWidth, e], matrixType, qkvWeight.Queries);
            AddMatrix(writer, to + "attn_k.weight", [kvWidth, e], matrixType, qkvWeight.Keys);
            AddMatrix(writer, to + "attn_v.weight", [kvWidth, e], matrixType, qkvWeight.Values);
            AddVector(writer, to + "attn_q.bias", queryWidth, qkvBias.Queries);
            AddVector(writer, to + "attn_k.bias", kvWidth, qkvBias.Keys);
            AddVector(writer, to + "attn_v.bias", kvWidth, qkvBias.Values);

            Matrix(writer, to + "attn_output.weight", [e, queryWidth], from + "attn.proj.weight", source, matrixType);
            Vector(writer, to + "ffn_norm.weight", e, from + "norm_2.weight", source);
            Matrix(writer, to + "ffn_gate.weight", [ff, e], from + "mlp.fc_1.weight", source, matrixType);
            Matrix(writer, to + "ffn_up.weight", [ff, e], from + "mlp.fc_2.weight", source, matrixType);
            Matrix(writer, to + "ffn_down.weight", [e, ff], from + "mlp.proj.weight", source, matrixType);
        }

        Vector(writer, "output_norm.weight", e, "transformer.ln_f.weight", source);
    }

    /// <summary>
    /// Describes the vocabulary file in <paramref name="writer"/>: the architecture (llama.cpp reads it even vocabulary-only),
    /// the tokenizer, the token embedding table and the output head, both in <paramref name="tableType"/>.
    /// With <paramref name="tiedHead"/> (litgpt's <c>tie_word_embeddings</c>) the head is the embedding table, read once and written twice.
    /// </summary>
    public static void DescribeVocabulary(GgufWriter writer, BackboneShape shape, HfTokenizer tokenizer, TensorSource source, GgmlType tableType, string sourcePath, bool tiedHead = false)
    {
        shape.Validate(sourcePath);
        if (tokenizer.Tokens.Count != shape.RowCount)
        {
            throw new ModelFileException(sourcePath, $"tokenizer has {tokenizer.Tokens.Count} rows; the model has {shape.RowCount}.");
        }

        AddArchitecture(writer, shape, tableType);
        writer.Add("tokenizer.ggml.model", "gpt2")
            .Add("tokenizer.ggml.pre", "qwen2")
            .Add("tokenizer.ggml.tokens", tokenizer.Tokens)
            .Add("tokenizer.ggml.token_type", tokenizer.TokenTypes.Select(t => (int)t).ToArray())
            .Add("tokenizer.ggml.merges", tokenizer.Merges)
            .Add("tokenizer.ggml.add_bos_token", false);
        // Qwen2's <|endoftext|> ends a document; Mini-Omni's own stop ids live in the audio file.
        int endOfText = tokenizer.Tokens.ToList().IndexOf("<|endoftext|>");
        if (endOfText >= 0)
        {
            writer.Add("tokenizer.ggml.eos_token_id", (uint)endOfText)
                .Add("tokenizer.ggml.padding_token_id", (uint)endOfText);
        }

        long rows = shape.RowCount;
        long e = shape.EmbeddingLength;
        if (tiedHead)
        {
            var table = new SharedRead(source(EmbeddingSourceName, [rows, e]), readers: 2);
            AddMatrix(writer, "token_embd.weight", [rows, e], tableType, table.Read);
            AddMatrix(writer, "output.weight", [rows, e], tableType, table.Read);
        }
        else
        {
            Matrix(writer, "token_embd.weight", [rows, e], EmbeddingSourceName, source, tableType);
            Matrix(writer, "output.weight", [rows, e], HeadSourceName, source, tableType);
        }
    }

    private static void AddArchitecture(GgufWriter writer, BackboneShape shape, GgmlType matrixType)
    {
        const string arch = "qwen2";
        writer.Add("general.architecture", arch)
            .Add("general.name", shape.Name)
            .Add("general.file_type", matrixType switch { GgmlType.F32 => 0u, GgmlType.F16 => 1u, _ => 7u })
            .Add($"{arch}.context_length", (uint)shape.ContextLength)
            .Add($"{arch}.embedding_length", (uint)shape.EmbeddingLength)
            .Add($"{arch}.block_count", (uint)shape.LayerCount)
            .Add($"{arch}.feed_forward_length", (uint)shape.FeedForwardLength)
            .Add($"{arch}.attention.head_count", (uint)shape.HeadCount)
            .Add($"{arch}.attention.head_count_kv", (uint)shape.KvGroupCount)
            .Add($"{arch}.attention.key_length", (uint)shape.HeadSize)
            .Add($"{arch}.attention.value_length", (uint)shape.HeadSize)
            .Add($"{arch}.rope.freq_base", shape.RopeBase)
            .Add($"{arch}.attention.layer_norm_rms_epsilon", shape.NormEpsilon);
    }

    private static void Matrix(GgufWriter writer, string name, long[] torchShape, string sourceName, TensorSource source, GgmlType type) =>
        AddMatrix(writer, name, torchShape, type, source(sourceName, torchShape));

    private static void Vector(GgufWriter writer, string name, long length, string sourceName, TensorSource source) =>
        AddVector(writer, name, length, source(sourceName, [length]));

    private static void AddMatrix(GgufWriter writer, string name, long[] torchShape, GgmlType type, Func<float[]> read) =>
        writer.AddTensor(name, [torchShape[1], torchShape[0]], type, read);

    // Norms and biases stay f32 whatever the matrix type: llama.cpp adds them in f32 and they are tiny.
    private static void AddVector(GgufWriter writer, string name, long length, Func<float[]> read) =>
        writer.AddTensor(name, [length], GgmlType.F32, read);

    /// <summary>One source tensor written as several file tensors: read once, kept until its last reader has it.</summary>
    private sealed class SharedRead(Func<float[]> read, int readers)
    {
        private float[]? _values;
        private int _readersLeft = readers;

        public float[] Read()
        {
            var values = _values ??= read();
            if (--_readersLeft == 0)
            {
                _values = null;
            }

            return values;
        }
    }

    /// <summary>
    /// Splits litgpt's fused qkv, grouped per KV group as [G, H/G + 2, hs, cols] (H/G query slices, one key,
    /// one value), into separate q, k, v in head order. Reads the fused tensor once for the three parts.
    /// </summary>
    private sealed class FusedQkvSplitter(BackboneShape shape, Func<float[]> readFused, long columns)
    {
        private float[]? _fused;
        private int _partsLeft = 3;

        public float[] Queries() => Gather(0, shape.HeadCount / shape.KvGroupCount);

        public float[] Keys() => Gather(shape.HeadCount / shape.KvGroupCount, 1);

        public float[] Values() => Gather(shape.HeadCount / shape.KvGroupCount + 1, 1);

        private float[] Gather(int firstSlice, int sliceCount)
        {
            _fused ??= readFused();
            int slicesPerGroup = shape.HeadCount / shape.KvGroupCount + 2;
            long sliceLength = shape.HeadSize * columns;
            var result = new float[shape.KvGroupCount * sliceCount * sliceLength];
            long at = 0;
            for (int group = 0; group < shape.KvGroupCount; group++)
            {
                long start = (group * slicesPerGroup + firstSlice) * sliceLength;
                long length = sliceCount * sliceLength;
                Array.Copy(_fused, start, result, at, length);
                at += length;
            }

            // The writer keeps every tensor's reader until the end: let the fused copy go once q, k and v are out.
            if (--_partsLeft == 0)
            {
                _fused = null;
            }

            return result;
        }
    }
}
