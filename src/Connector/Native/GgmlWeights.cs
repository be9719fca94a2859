using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Native;

/// <summary>
/// A tensor computed on the host at load, with its ggml dims (innermost first), stored as <paramref name="Type"/>
/// (F32, or Q8_0 for matrices whose rows are whole blocks). Where it stands for a file tensor in another layout or
/// type, <paramref name="Replaces"/> names that tensor, which is then not uploaded.
/// </summary>
internal sealed record DerivedTensor(string Name, long[] Dims, float[] Values, GgmlType Type = GgmlType.F32, string? Replaces = null);

/// <summary>Tensors of a GGUF file uploaded once into one backend buffer, looked up by name when graphs are built.</summary>
internal sealed class GgmlWeights : IDisposable
{
    private readonly SafeGgmlContextHandle _context;
    private readonly SafeGgmlBufferHandle _buffer;
    private readonly Dictionary<string, GgmlTensor> _tensors;
    private readonly string _source;

    private GgmlWeights(string source, SafeGgmlContextHandle context, SafeGgmlBufferHandle buffer, Dictionary<string, GgmlTensor> tensors)
    {
        _source = source;
        _context = context;
        _buffer = buffer;
        _tensors = tensors;
    }

    /// <summary>Bytes of weight data held.</summary>
    public long ByteCount { get; private init; }

    /// <summary>
    /// Uploads the tensors of <paramref name="file"/> whose names satisfy <paramref name="include"/> onto <paramref name="backend"/>,
    /// plus <paramref name="derived"/> tensors computed once on the host (e.g. reciprocals the graph would otherwise recompute),
    /// in place of the file tensors they replace.
    /// </summary>
    public static GgmlWeights Load(GgufFile file, Func<string, bool> include, SafeGgmlBackendHandle backend, IReadOnlyList<DerivedTensor>? derived = null)
    {
        derived ??= [];
        var replaced = derived.Where(d => d.Replaces is not null).Select(d => d.Replaces!).ToHashSet(StringComparer.Ordinal);
        var selected = file.Tensors.Values.Where(t => include(t.Name) && !replaced.Contains(t.Name)).ToList();
        foreach (var tensor in selected.Where(t => t.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0)))
        {
            throw new ModelFileException(file.Path, $"{tensor.Type} is not supported for audio tensors (F32, F16 or Q8_0).", tensor.Name);
        }

        var context = SafeGgmlContextHandle.Create(GgmlNative.ggml_tensor_overhead() * (nuint)Math.Max(1, selected.Count + derived.Count), noAlloc: true);
        try
        {
            var tensors = new Dictionary<string, GgmlTensor>(StringComparer.Ordinal);
            foreach (var info in selected)
            {
                var type = info.Type switch
                {
                    GgmlType.F32 => GgmlElementType.F32,
                    GgmlType.F16 => GgmlElementType.F16,
                    _ => GgmlElementType.Q8_0,
                };
                long[] ne = [.. info.Dims, .. Enumerable.Repeat(1L, 4 - info.Dims.Count)];
                var tensor = new GgmlTensor(GgmlNative.ggml_new_tensor_4d(context.DangerousGetHandle(), type, ne[0], ne[1], ne[2], ne[3]));
                GgmlNative.ggml_set_name(tensor.Handle, info.Name);
                tensors.Add(info.Name, tensor);
            }

            foreach (var extra in derived)
            {
                long[] ne = [.. extra.Dims, .. Enumerable.Repeat(1L, 4 - extra.Dims.Length)];
                if (ne.Aggregate(1L, (a, b) => a * b) != extra.Values.Length)
                {
                    throw new ArgumentException($"Derived tensor '{extra.Name}' has {extra.Values.Length} values for dims [{string.Join(", ", extra.Dims)}].");
                }

                var type = extra.Type switch
                {
                    GgmlType.F32 => GgmlElementType.F32,
                    GgmlType.Q8_0 when ne[0] % GgmlTypeInfo.Block(GgmlType.Q8_0).BlockElements == 0 => GgmlElementType.Q8_0,
                    _ => throw new ArgumentException($"Derived tensor '{extra.Name}' cannot be stored as {extra.Type} with rows of {ne[0]}."),
                };
                var tensor = new GgmlTensor(GgmlNative.ggml_new_tensor_4d(context.DangerousGetHandle(), type, ne[0], ne[1], ne[2], ne[3]));
                GgmlNative.ggml_set_name(tensor.Handle, extra.Name);
                tensors.Add(extra.Name, tensor);
            }

            var buffer = SafeGgmlBufferHandle.AllocateContextTensors(context, backend);
            try
            {
                Upload(file, selected, derived, tensors);
            }
            catch
            {
                // The buffer holds every weight: freed at once, not left to a finalizer, when an upload fails.
                buffer.Dispose();
                throw;
            }

            return new GgmlWeights(file.Path, context, buffer, tensors) { ByteCount = selected.Sum(t => t.ByteSize) };
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    // Derived tensors first, then the file's, each copied into its place in the backend buffer.
    private static unsafe void Upload(GgufFile file, List<GgufTensorInfo> selected, IReadOnlyList<DerivedTensor> derived, Dictionary<string, GgmlTensor> tensors)
    {
        foreach (var extra in derived)
        {
            using var encoded = new MemoryStream();
            if (extra.Type == GgmlType.Q8_0)
            {
                TensorEncoding.WriteQ8_0(encoded, extra.Values);
            }
            else
            {
                TensorEncoding.WriteFloats(encoded, extra.Values, GgmlType.F32);
            }

            fixed (byte* pointer = encoded.GetBuffer())
            {
                GgmlNative.ggml_backend_tensor_set(tensors[extra.Name].Handle, pointer, 0, (nuint)encoded.Length);
            }
        }

        foreach (var info in selected)
        {
            var bytes = file.GetTensorBytes(info);
            fixed (byte* pointer = bytes)
            {
                GgmlNative.ggml_backend_tensor_set(tensors[info.Name].Handle, pointer, 0, (nuint)bytes.Length);
            }
        }
    }

    /// <summary>The tensor <paramref name="name"/>; a missing one names the file and the tensor.</summary>
    public GgmlTensor this[string name] =>
        _tensors.TryGetValue(name, out var tensor) ? tensor : throw new ModelFileException(_source, "tensor not found.", name);

    /// <summary>Whether the tensor <paramref name="name"/> is loaded.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <inheritdoc />
    public void Dispose()
    {
        // SafeHandles free once however often, and from whichever thread, they are disposed.
        _buffer.Dispose();
        _context.Dispose();
    }
}
