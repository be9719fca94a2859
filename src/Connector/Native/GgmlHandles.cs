using System.Runtime.InteropServices;

namespace MiniOmni.SK.Native;

/// <summary>Owns a <c>ggml_context</c>.</summary>
internal sealed class SafeGgmlContextHandle : SafeHandle
{
    private SafeGgmlContextHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>A context of <paramref name="bytes"/> for tensor and graph metadata; data lives in backend buffers when <paramref name="noAlloc"/>.</summary>
    public static SafeGgmlContextHandle Create(nuint bytes, bool noAlloc)
    {
        GgmlLibrary.EnsureLoaded();
        var context = new SafeGgmlContextHandle();
        context.SetHandle(GgmlNative.ggml_init(new GgmlInitParams { mem_size = bytes, mem_buffer = IntPtr.Zero, no_alloc = (byte)(noAlloc ? 1 : 0) }));
        return context.IsInvalid ? throw new InvalidOperationException($"ggml_init could not allocate a {bytes}-byte context.") : context;
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        GgmlNative.ggml_free(handle);
        return true;
    }
}

/// <summary>Owns a <c>ggml_backend</c>.</summary>
internal sealed class SafeGgmlBackendHandle : SafeHandle
{
    private SafeGgmlBackendHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Takes ownership of a backend returned by ggml.</summary>
    public static SafeGgmlBackendHandle Own(IntPtr backend, string what)
    {
        var owner = new SafeGgmlBackendHandle();
        owner.SetHandle(backend);
        return owner.IsInvalid ? throw new InvalidOperationException($"ggml could not initialise the {what} backend.") : owner;
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        GgmlNative.ggml_backend_free(handle);
        return true;
    }
}

/// <summary>Owns a <c>ggml_backend_buffer</c>; keeps the backend it lives on alive.</summary>
internal sealed class SafeGgmlBufferHandle : SafeHandle
{
    private static long s_liveCount;
    private SafeGgmlBackendHandle? _backend;

    /// <summary>Buffers allocated and not yet freed in this process: what a failed load must leave as it found it.</summary>
    public static long LiveCount => Interlocked.Read(ref s_liveCount);

    private SafeGgmlBufferHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Allocates every tensor of <paramref name="context"/> in one buffer of <paramref name="backend"/>.</summary>
    public static SafeGgmlBufferHandle AllocateContextTensors(SafeGgmlContextHandle context, SafeGgmlBackendHandle backend)
    {
        var buffer = new SafeGgmlBufferHandle();
        bool added = false;
        backend.DangerousAddRef(ref added);
        buffer._backend = backend;
        buffer.SetHandle(GgmlNative.ggml_backend_alloc_ctx_tensors(context.DangerousGetHandle(), backend.DangerousGetHandle()));
        if (buffer.IsInvalid)
        {
            backend.DangerousRelease();
            buffer._backend = null;
            throw new InvalidOperationException("ggml could not allocate the weights buffer (out of memory?).");
        }

        Interlocked.Increment(ref s_liveCount);
        return buffer;
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        GgmlNative.ggml_backend_buffer_free(handle);
        _backend?.DangerousRelease();
        Interlocked.Decrement(ref s_liveCount);
        return true;
    }
}

/// <summary>Owns a <c>ggml_backend_sched</c>; keeps its backends alive.</summary>
internal sealed class SafeGgmlSchedulerHandle : SafeHandle
{
    private SafeGgmlBackendHandle[] _backends = [];

    private SafeGgmlSchedulerHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>A scheduler over <paramref name="backends"/>, in priority order (the CPU last), for graphs of up to <paramref name="graphSize"/> nodes.</summary>
    public static unsafe SafeGgmlSchedulerHandle Create(IReadOnlyList<SafeGgmlBackendHandle> backends, int graphSize)
    {
        var scheduler = new SafeGgmlSchedulerHandle();
        var raw = new IntPtr[backends.Count];
        for (int i = 0; i < backends.Count; i++)
        {
            bool added = false;
            backends[i].DangerousAddRef(ref added);
            raw[i] = backends[i].DangerousGetHandle();
        }

        scheduler._backends = [.. backends];
        fixed (IntPtr* pointer = raw)
        {
            scheduler.SetHandle(GgmlNative.ggml_backend_sched_new(pointer, null, raw.Length, (nuint)graphSize, parallel: false, op_offload: true));
        }

        return scheduler.IsInvalid ? throw new InvalidOperationException("ggml could not create a scheduler.") : scheduler;
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        GgmlNative.ggml_backend_sched_free(handle);
        foreach (var backend in _backends)
        {
            backend.DangerousRelease();
        }

        return true;
    }
}
