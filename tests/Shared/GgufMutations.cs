using CsCheck;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Tests;

/// <summary>One change to a GGUF's structure: a header field, a key, a tensor's type, shape, name or data.</summary>
public abstract record GgufMutation
{
    public abstract void Apply(GgufEditor editor);

    protected static int Pick(int index, int count) => count == 0 ? -1 : (int)((uint)index % (uint)count);
}

/// <summary>Sets an existing key to a value of any type: 0, negative, huge, NaN, empty, another string...</summary>
public sealed record SetKey(int Key, int Value) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int key = Pick(Key, editor.Metadata.Count);
        if (key >= 0)
        {
            editor.Metadata[key] = KeyValuePair.Create(editor.Metadata[key].Key, GgufMutations.Values[Pick(Value, GgufMutations.Values.Length)]);
        }
    }
}

/// <summary>Changes a numeric key by a factor or an offset, keeping its type: metadata inconsistent with the rest.</summary>
public sealed record NudgeKey(int Key, int Change) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int key = Pick(Key, editor.Metadata.Count);
        if (key < 0)
        {
            return;
        }

        var (name, value) = editor.Metadata[key];
        long delta = Change % 5 - 2; // -2 .. 2
        object? changed = value switch
        {
            uint u => Change % 2 == 0 ? (uint)(u * 2) : (uint)(u + delta),
            int i => Change % 2 == 0 ? i * 2 : (int)(i + delta),
            float f => Change % 2 == 0 ? -f : f * 1e6f,
            int[] a when a.Length > 0 => a.Select((x, n) => n == Pick(Change, a.Length) ? x + (int)delta : x).ToArray(),
            int[] a => a,
            string[] s when s.Length > 1 => s[..^1],
            _ => null,
        };
        if (changed is not null)
        {
            editor.Metadata[key] = KeyValuePair.Create(name, changed);
        }
    }
}

/// <summary>Removes a key.</summary>
public sealed record RemoveKey(int Key) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int key = Pick(Key, editor.Metadata.Count);
        if (key >= 0)
        {
            editor.Metadata.RemoveAt(key);
        }
    }
}

/// <summary>Adds a key llama.cpp or MiniOmni.SK would act on, with any value.</summary>
public sealed record AddKey(int Key, int Value) : GgufMutation
{
    public override void Apply(GgufEditor editor) =>
        editor.Set(GgufMutations.Keys[Pick(Key, GgufMutations.Keys.Length)], GgufMutations.Values[Pick(Value, GgufMutations.Values.Length)]);
}

/// <summary>Changes a tensor's type tag and nothing else: data of one type labelled another.</summary>
public sealed record RelabelTensor(int Tensor, int Type) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int tensor = Pick(Tensor, editor.Tensors.Count);
        if (tensor >= 0)
        {
            editor.Tensors[tensor] = editor.Tensors[tensor] with { Type = GgufMutations.Types[Pick(Type, GgufMutations.Types.Length)] };
        }
    }
}

/// <summary>Re-encodes a float tensor in the other float type: a well-formed file with a type some graph may not take.</summary>
public sealed record RetypeTensor(int Tensor) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int tensor = Pick(Tensor, editor.Tensors.Count);
        if (tensor >= 0 && editor.Tensors[tensor].Type is GgmlType.F32 or GgmlType.F16)
        {
            editor.Retype(editor.Tensors[tensor].Name, editor.Tensors[tensor].Type == GgmlType.F32 ? GgmlType.F16 : GgmlType.F32);
        }
    }
}

/// <summary>Changes one dimension of a tensor (its data stays).</summary>
public sealed record ReshapeTensor(int Tensor, int Dimension, int Size) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int tensor = Pick(Tensor, editor.Tensors.Count);
        if (tensor < 0)
        {
            return;
        }

        long[] dims = [.. editor.Tensors[tensor].Dims];
        int d = Pick(Dimension, dims.Length);
        dims[d] = GgufMutations.Sizes[Pick(Size, GgufMutations.Sizes.Length)](dims[d]);
        editor.Tensors[tensor] = editor.Tensors[tensor] with { Dims = dims };
    }
}

/// <summary>Exchanges the data (and shapes) of two tensors under their names.</summary>
public sealed record SwapTensors(int First, int Second) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int a = Pick(First, editor.Tensors.Count), b = Pick(Second, editor.Tensors.Count);
        if (a >= 0)
        {
            var (x, y) = (editor.Tensors[a], editor.Tensors[b]);
            editor.Tensors[a] = y with { Name = x.Name };
            editor.Tensors[b] = x with { Name = y.Name };
        }
    }
}

/// <summary>Removes a tensor, or adds a second one of the same name.</summary>
public sealed record DropOrDuplicateTensor(int Tensor, bool Duplicate) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        int tensor = Pick(Tensor, editor.Tensors.Count);
        if (tensor < 0)
        {
            return;
        }

        if (Duplicate)
        {
            editor.Tensors.Add(editor.Tensors[tensor]);
        }
        else
        {
            editor.Tensors.RemoveAt(tensor);
        }
    }
}

/// <summary>Edits one entry of a string array (a tokenizer's tokens or merges): a duplicate, an empty string, odd text.</summary>
public sealed record EditStrings(int Key, int Entry, int Text) : GgufMutation
{
    public override void Apply(GgufEditor editor)
    {
        var arrays = editor.Metadata.Select((entry, index) => (entry, index)).Where(e => e.entry.Value is string[] { Length: > 0 }).ToList();
        if (arrays.Count == 0)
        {
            return;
        }

        var (entry, index) = arrays[Pick(Key, arrays.Count)];
        string[] values = [.. (string[])entry.Value];
        int at = Pick(Entry, values.Length);
        values[at] = GgufMutations.Texts[Pick(Text, GgufMutations.Texts.Length)] ?? values[Pick(Entry / 7, values.Length)];
        editor.Metadata[index] = KeyValuePair.Create(entry.Key, (object)values);
    }
}

/// <summary>Generators of GGUF structure mutations, with the values they draw from.</summary>
public static class GgufMutations
{
    /// <summary>Values of every GGUF type at their edges.</summary>
    public static readonly object[] Values =
    [
        0u, 1u, 2u, 3u, 8u, 64u, 4096u, 65536u, uint.MaxValue, 0x80000000u,
        0, -1, 1, 7, 72, 512, 1024, 1500, int.MaxValue, int.MinValue,
        0f, -1f, 1e-6f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e30f, float.Epsilon,
        0UL, ulong.MaxValue, -1L, long.MaxValue, 0.0, double.NaN, (byte)0, (sbyte)-1, (short)-1, (ushort)65535,
        "", "qwen2", "none", "gpt2", "llama", "miniomni-audio", "f32", "q4_k_m", "mlp", "linear", "yarn", "bogus", new string('x', 300),
        true, false,
        Array.Empty<int>(), new[] { 0 }, new[] { -1, 2, 4 }, new[] { 4, 2, 1 }, new[] { 8, 8, 4, 2 }, new[] { int.MaxValue },
        new uint[] { 1, 2 }, new float[] { 1f, float.NaN }, Array.Empty<string>(), new[] { "a b" }, new[] { "" }, new bool[] { true },
    ];

    /// <summary>Keys llama.cpp or MiniOmni.SK act on that a file might carry.</summary>
    public static readonly string[] Keys =
    [
        "general.alignment", "qwen2.rope.scaling.type", "qwen2.rope.scaling.factor", "qwen2.expert_count", "qwen2.expert_used_count",
        "qwen2.rope.dimension_count", "qwen2.attention.sliding_window", "qwen2.vocab_size", "tokenizer.ggml.scores",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_eos_token", "tokenizer.chat_template", "split.count",
        "miniomni.backbone.headless", "miniomni.file_type", "miniomni.snac.noise", "general.architecture",
    ];

    /// <summary>Every type the readers know, and some they do not.</summary>
    public static readonly GgmlType[] Types = [.. Enum.GetValues<GgmlType>(), (GgmlType)4, (GgmlType)16, (GgmlType)39, (GgmlType)77, (GgmlType)uint.MaxValue];

    /// <summary>New sizes for a dimension.</summary>
    public static readonly Func<long, long>[] Sizes = [_ => 1, d => d * 2, d => Math.Max(1, d / 2), d => d + 1, _ => int.MaxValue, _ => 0, d => d * 32];

    /// <summary>Texts for string arrays; null copies another entry of the same array.</summary>
    public static readonly string?[] Texts = [null, null, "", " ", "a b", "a", "\u00e9", "<|im_start|>", "[PAD5]", "[EMPTY_3]", new string('z', 1000), "\t\n", "x y z"];

    public static Gen<GgufMutation> One { get; } = Gen.OneOf<GgufMutation>(
        Gen.Select(Gen.Int, Gen.Int, (k, v) => (GgufMutation)new SetKey(k, v)),
        Gen.Select(Gen.Int, Gen.Int, (k, v) => (GgufMutation)new SetKey(k, v)),
        Gen.Select(Gen.Int, Gen.Int, (k, c) => (GgufMutation)new NudgeKey(k, c)),
        Gen.Select(Gen.Int, Gen.Int, (k, c) => (GgufMutation)new NudgeKey(k, c)),
        Gen.Int.Select(k => (GgufMutation)new RemoveKey(k)),
        Gen.Select(Gen.Int, Gen.Int, (k, v) => (GgufMutation)new AddKey(k, v)),
        Gen.Select(Gen.Int, Gen.Int, (t, y) => (GgufMutation)new RelabelTensor(t, y)),
        Gen.Int.Select(t => (GgufMutation)new RetypeTensor(t)),
        Gen.Select(Gen.Int, Gen.Int, Gen.Int, (t, d, s) => (GgufMutation)new ReshapeTensor(t, d, s)),
        Gen.Select(Gen.Int, Gen.Int, (a, b) => (GgufMutation)new SwapTensors(a, b)),
        Gen.Select(Gen.Int, Gen.Bool, (t, d) => (GgufMutation)new DropOrDuplicateTensor(t, d)),
        Gen.Select(Gen.Int, Gen.Int, Gen.Int, (k, e, x) => (GgufMutation)new EditStrings(k, e, x)));

    /// <summary>One to three structure mutations, then sometimes a byte mutation of the written file.</summary>
    public static Gen<(GgufMutation[] Structure, ByteMutation[] Bytes)> Some { get; } =
        Gen.Select(One.Array[1, 3], Gen.Frequency((3, Gen.Const(Array.Empty<ByteMutation>())), (1, ByteMutations.Some)));

    /// <summary>The bytes of <paramref name="original"/> after <paramref name="mutation"/>.</summary>
    public static byte[] Apply(GgufEditor original, (GgufMutation[] Structure, ByteMutation[] Bytes) mutation)
    {
        var editor = original.Clone();
        foreach (var change in mutation.Structure)
        {
            try
            {
                change.Apply(editor);
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or InvalidCastException)
            {
                // A change that cannot be made to this file (e.g. re-encoding a tensor whose shape it just broke) is skipped.
            }
        }

        return ByteMutations.ApplyAll(mutation.Bytes, editor.ToBytes());
    }
}
