using System.Runtime.InteropServices;

namespace MiniOmni.SK.Native;

/// <summary>Which ggml backends a stage runs on.</summary>
internal sealed record GgmlComputeOptions
{
    /// <summary>CPU threads for the CPU backend; null uses every core.</summary>
    public int? Threads { get; init; }

    /// <summary>Whether to use a GPU when the loaded ggml has one (CUDA with LLamaSharp.Backend.Cuda12).</summary>
    public bool UseGpu { get; init; } = true;

    /// <summary>
    /// Whether a stage on the CPU alone runs elementwise chains as fused kernels (<see cref="FusedCpuKernels"/>);
    /// false composes them from ggml ops, as on a GPU (tests compare the two).
    /// </summary>
    public bool FuseCpuKernels { get; init; } = true;
}

/// <summary>Finds and creates ggml backends: the first GPU the loaded ggml registers, and the CPU.</summary>
internal static class GgmlDevices
{
    /// <summary>Creates the backends a stage schedules over, in priority order: a GPU if there is one and it is wanted, then the CPU.</summary>
    public static IReadOnlyList<SafeGgmlBackendHandle> CreateBackends(GgmlComputeOptions options)
    {
        GgmlLibrary.EnsureLoaded();
        var backends = new List<SafeGgmlBackendHandle>();
        if (options.UseGpu && FindGpu() is { } gpu)
        {
            backends.Add(SafeGgmlBackendHandle.Own(GgmlNative.ggml_backend_dev_init(gpu, null), DeviceName(gpu)));
        }

        var cpu = SafeGgmlBackendHandle.Own(GgmlNative.ggml_backend_cpu_init(), "CPU");
        GgmlNative.ggml_backend_cpu_set_n_threads(cpu.DangerousGetHandle(), Math.Clamp(options.Threads ?? Environment.ProcessorCount, 1, 512));
        backends.Add(cpu);
        return backends;
    }

    /// <summary>The names of the devices the loaded ggml registers (for logs and diagnostics).</summary>
    public static IReadOnlyList<string> DeviceNames()
    {
        GgmlLibrary.EnsureLoaded();
        return [.. Enumerable.Range(0, (int)GgmlNative.ggml_backend_dev_count()).Select(i => DeviceName(GgmlNative.ggml_backend_dev_get((nuint)i)))];
    }

    private static IntPtr? FindGpu()
    {
        for (nuint i = 0; i < GgmlNative.ggml_backend_dev_count(); i++)
        {
            IntPtr device = GgmlNative.ggml_backend_dev_get(i);
            if (GgmlNative.ggml_backend_dev_type(device) == GgmlDeviceType.Gpu)
            {
                return device;
            }
        }

        return null;
    }

    private static string DeviceName(IntPtr device) => Marshal.PtrToStringUTF8(GgmlNative.ggml_backend_dev_name(device)) ?? "unknown";
}
