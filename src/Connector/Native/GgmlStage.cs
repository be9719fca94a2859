using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MiniOmni.SK.Native;

/// <summary>
/// Runs one stage's graphs (encoder, codec, ...) on its own backends through a ggml scheduler. The compute buffer is
/// reserved once for the worst case and reused; a lock makes each stage serve one call at a time, since a ggml
/// backend is not safe to drive from two threads at once (give concurrent callers one stage each).
/// </summary>
internal sealed class GgmlStage : IDisposable
{
    private readonly IReadOnlyList<SafeGgmlBackendHandle> _backends;
    private readonly SafeGgmlSchedulerHandle _scheduler;
    private readonly int _maxNodes;
    private readonly Lock _lock = new();
    private bool _disposed;
    private readonly string _name;
    private readonly bool _fusedCpuKernels;
    private readonly ILogger _logger;
    private string? _plannedLayout;

    /// <summary>Creates the stage; <paramref name="maxNodes"/> bounds the size of its graphs.</summary>
    public GgmlStage(string name, GgmlComputeOptions options, int maxNodes = 8192, ILogger? logger = null)
    {
        _name = name;
        _maxNodes = maxNodes;
        _logger = logger ?? NullLogger.Instance;
        _backends = GgmlDevices.CreateBackends(options);
        _scheduler = SafeGgmlSchedulerHandle.Create(_backends, maxNodes);
        // Custom ops run on the CPU backend only: with a GPU they would split the graph and copy tensors back and forth.
        _fusedCpuKernels = options.FuseCpuKernels && _backends.Count == 1;
    }

    /// <summary>The backend weights should live on: the GPU when there is one, else the CPU.</summary>
    public SafeGgmlBackendHandle PrimaryBackend => _backends[0];

    /// <summary>Reserves compute memory for the graph <paramref name="build"/> makes (the largest this stage will run).</summary>
    public void Reserve(Action<GgmlGraphBuilder> build)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var context = CreateContext();
            var builder = NewBuilder(context);
            build(builder);
            if (!GgmlNative.ggml_backend_sched_reserve(_scheduler.DangerousGetHandle(), builder.Graph))
            {
                throw new InvalidOperationException($"ggml could not reserve compute memory for the {_name} stage (out of memory?).");
            }

            _plannedLayout = Layout(builder);

            long bytes = _backends.Sum(b => (long)GgmlNative.ggml_backend_sched_get_buffer_size(_scheduler.DangerousGetHandle(), b.DangerousGetHandle()));
            _logger.LogDebug("{Stage}: reserved {MiB:F1} MiB of compute buffers.", _name, bytes / (1024.0 * 1024.0));
        }
    }

    /// <summary>
    /// Builds a graph with <paramref name="build"/>, fills its inputs by name from <paramref name="inputs"/> (float[] or int[]),
    /// computes it and returns every output by name. <paramref name="outputBuffer"/>, when given, supplies the array an
    /// output (named, with its element count) is read into, so a stage run every step need not allocate its results.
    /// </summary>
    public Dictionary<string, float[]> Run(Action<GgmlGraphBuilder> build, IReadOnlyDictionary<string, Array> inputs, Func<string, long, float[]>? outputBuffer = null)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var context = CreateContext();
            var builder = NewBuilder(context);
            build(builder);
            long built = clock.ElapsedTicks;
            foreach (string name in builder.Inputs.Keys.Except(inputs.Keys))
            {
                throw new ArgumentException($"{_name}: no data for the input '{name}'.");
            }

            IntPtr scheduler = _scheduler.DangerousGetHandle();
            // ggml's allocator reuses its last plan for any graph with as many nodes and leaves whose nodes still fit it,
            // and places leaves by their index alone: a graph of another layout with the same counts (the heads' products
            // of text and audio positions, text [1, 1] and audio [1] after text [1] and audio [1, 1]) would have an input
            // placed where the last graph had a weight, out of every buffer (a segmentation fault). So a graph whose
            // layout differs from the last one's is planned afresh; the reserved buffers are kept when they suffice.
            string layout = Layout(builder);
            if (layout != _plannedLayout)
            {
                using var planContext = CreateContext();
                var plan = NewBuilder(planContext);
                build(plan);
                if (!GgmlNative.ggml_backend_sched_reserve(scheduler, plan.Graph))
                {
                    throw new InvalidOperationException($"ggml could not reserve compute memory for the {_name} graph (out of memory?).");
                }

                _plannedLayout = layout;
            }

            GgmlNative.ggml_backend_sched_reset(scheduler);
            if (!GgmlNative.ggml_backend_sched_alloc_graph(scheduler, builder.Graph))
            {
                throw new InvalidOperationException($"ggml could not allocate the {_name} graph (out of memory?).");
            }

            foreach (var (name, tensor) in builder.Inputs)
            {
                Upload(name, tensor, inputs[name]);
            }

            long allocated = clock.ElapsedTicks;
            int status = GgmlNative.ggml_backend_sched_graph_compute(scheduler, builder.Graph);
            _logger.LogDebug("{Stage}: {Nodes} nodes, built in {Build:F1} ms, allocated in {Alloc:F1} ms, computed in {Compute:F1} ms.", _name, GgmlNative.ggml_graph_n_nodes(builder.Graph),
                built * 1000.0 / System.Diagnostics.Stopwatch.Frequency, (allocated - built) * 1000.0 / System.Diagnostics.Stopwatch.Frequency, (clock.ElapsedTicks - allocated) * 1000.0 / System.Diagnostics.Stopwatch.Frequency);
            if (status != 0)
            {
                throw new InvalidOperationException($"ggml failed to compute the {_name} graph (status {status}).");
            }

            return builder.Outputs.ToDictionary(output => output.Key, output => Download(output.Value, outputBuffer?.Invoke(output.Key, output.Value.ElementCount)));
        }
    }

    /// <summary>Frees the stage once the call in progress, if any, has finished; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _scheduler.Dispose();
            foreach (var backend in _backends)
            {
                backend.Dispose();
            }
        }
    }

    // What decides a graph's layout here: every build is a function of its inputs' names and shapes and its outputs'.
    private static string Layout(GgmlGraphBuilder builder) =>
        string.Join(';', builder.Inputs.Select(input => $"{input.Key}{input.Value}")) + "|" + string.Join(';', builder.Outputs.Select(output => $"{output.Key}{output.Value}"))
        + "|" + GgmlNative.ggml_graph_n_nodes(builder.Graph).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private SafeGgmlContextHandle CreateContext() =>
        SafeGgmlContextHandle.Create(GgmlNative.ggml_tensor_overhead() * (nuint)_maxNodes + GgmlNative.ggml_graph_overhead_custom((nuint)_maxNodes, false), noAlloc: true);

    private GgmlGraphBuilder NewBuilder(SafeGgmlContextHandle context) =>
        new(context, GgmlNative.ggml_new_graph_custom(context.DangerousGetHandle(), (nuint)_maxNodes, false), fusedCpuKernels: _fusedCpuKernels);

    private unsafe void Upload(string name, GgmlTensor tensor, Array data)
    {
        GgmlElementType expectedType = data switch
        {
            float[] => GgmlElementType.F32,
            int[] => GgmlElementType.I32,
            _ => throw new ArgumentException($"{_name}: input '{name}' must be float[] or int[], not {data.GetType().Name}."),
        };
        if (tensor.Type != expectedType || data.Length != tensor.ElementCount)
        {
            throw new ArgumentException($"{_name}: input '{name}' is {tensor}; got {data.Length} values of {expectedType}.");
        }

        // An input no output depends on gets no memory, and ggml aborts on writing to it.
        if (!tensor.IsAllocated)
        {
            throw new ArgumentException($"{_name}: input '{name}' is not used by the graph.");
        }

        // float and int are both 4 bytes: pin the array and hand its bytes over.
        var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        try
        {
            GgmlNative.ggml_backend_tensor_set(tensor.Handle, (void*)pin.AddrOfPinnedObject(), 0, (nuint)(data.Length * 4));
        }
        finally
        {
            pin.Free();
        }
    }

    private static unsafe float[] Download(GgmlTensor tensor, float[]? destination)
    {
        if (tensor.Type != GgmlElementType.F32 || !tensor.IsContiguous)
        {
            throw new InvalidOperationException($"Outputs must be dense F32; got {tensor}.");
        }

        if (destination is not null && destination.Length < tensor.ElementCount)
        {
            throw new ArgumentException($"An output buffer of {destination.Length} values cannot hold {tensor}.", nameof(destination));
        }

        var values = destination ?? new float[tensor.ElementCount];
        fixed (float* pointer = values)
        {
            GgmlNative.ggml_backend_tensor_get(tensor.Handle, pointer, 0, (nuint)(tensor.ElementCount * sizeof(float)));
        }

        return values;
    }
}
