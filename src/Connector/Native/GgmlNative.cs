using System.Runtime.InteropServices;

namespace MiniOmni.SK.Native;

/// <summary>ggml's element types used here (values as in ggml.h).</summary>
internal enum GgmlElementType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    IQ4_NL = 20,
    I32 = 26,
}

/// <summary><c>enum ggml_backend_dev_type</c>.</summary>
internal enum GgmlDeviceType
{
    Cpu = 0,
    Gpu = 1,
    IntegratedGpu = 2,
    Accelerator = 3,
}

/// <summary><c>struct ggml_init_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlInitParams
{
    public nuint mem_size;
    public IntPtr mem_buffer;
    public byte no_alloc;
}

/// <summary>
/// The raw ggml API, names kept verbatim, bound to the very libraries LLamaSharp has loaded (<see cref="GgmlLibrary"/>).
/// Every call that can assert on a shape is reached only through <see cref="GgmlGraphBuilder"/>, which checks first.
/// </summary>
internal static partial class GgmlNative
{
    private const string Base = "ggml-base";
    private const string Cpu = "ggml-cpu";
    private const string Registry = "ggml";

    /// <summary>Byte offset of the <c>buffer</c> pointer in <c>struct ggml_tensor</c>, after the type; pinned by the ABI tests.</summary>
    public const int TensorBufferOffset = 8;

    /// <summary>Byte offset of <c>ne[4]</c> in <c>struct ggml_tensor</c> (after the type and the buffer pointer); pinned by the ABI tests.</summary>
    public const int TensorShapeOffset = 16;

    /// <summary>Byte offset of <c>nb[4]</c> (strides in bytes), right after <c>ne</c>.</summary>
    public const int TensorStrideOffset = TensorShapeOffset + 32;

    /// <summary>
    /// Byte offset of <c>src[GGML_MAX_SRC]</c>, after <c>nb</c>, the op, its 64 bytes of parameters and the flags;
    /// pinned by the ABI tests.
    /// </summary>
    public const int TensorSourcesOffset = TensorStrideOffset + 32 + 4 + 64 + 4;

    /// <summary><c>GGML_MAX_SRC</c>.</summary>
    public const int MaxSources = 10;

    /// <summary><c>GGML_MAX_NAME</c>.</summary>
    public const int MaxNameLength = 64;

    // Contexts and tensors
    [LibraryImport(Base)] public static partial IntPtr ggml_init(GgmlInitParams parameters);
    [LibraryImport(Base)] public static partial void ggml_free(IntPtr ctx);
    [LibraryImport(Base)] public static partial nuint ggml_tensor_overhead();
    [LibraryImport(Base)] public static partial nuint ggml_graph_overhead_custom(nuint size, [MarshalAs(UnmanagedType.U1)] bool grads);
    [LibraryImport(Base)] public static partial IntPtr ggml_new_tensor_1d(IntPtr ctx, GgmlElementType type, long ne0);
    [LibraryImport(Base)] public static partial IntPtr ggml_new_tensor_2d(IntPtr ctx, GgmlElementType type, long ne0, long ne1);
    [LibraryImport(Base)] public static partial IntPtr ggml_new_tensor_3d(IntPtr ctx, GgmlElementType type, long ne0, long ne1, long ne2);
    [LibraryImport(Base)] public static partial IntPtr ggml_new_tensor_4d(IntPtr ctx, GgmlElementType type, long ne0, long ne1, long ne2, long ne3);
    [LibraryImport(Base, StringMarshalling = StringMarshalling.Utf8)] public static partial IntPtr ggml_set_name(IntPtr tensor, string name);
    [LibraryImport(Base)] public static partial void ggml_set_input(IntPtr tensor);
    [LibraryImport(Base)] public static partial void ggml_set_output(IntPtr tensor);
    [LibraryImport(Base)] public static partial nuint ggml_nbytes(IntPtr tensor);
    [LibraryImport(Base)] public static partial long ggml_nelements(IntPtr tensor);
    [LibraryImport(Base)] public static partial IntPtr ggml_get_data(IntPtr tensor);
    [LibraryImport(Base)] public static partial nuint ggml_row_size(GgmlElementType type, long ne);
    [LibraryImport(Base)] public static unsafe partial nuint ggml_quantize_chunk(GgmlElementType type, float* src, void* dst, long start, long nrows, long n_per_row, float* imatrix);

    // Graphs
    [LibraryImport(Base)] public static partial IntPtr ggml_new_graph_custom(IntPtr ctx, nuint size, [MarshalAs(UnmanagedType.U1)] bool grads);
    [LibraryImport(Base)] public static partial void ggml_build_forward_expand(IntPtr graph, IntPtr tensor);
    [LibraryImport(Base)] public static partial int ggml_graph_n_nodes(IntPtr graph);

    // Operations (shapes checked by the caller)
    [LibraryImport(Base)] public static partial IntPtr ggml_mul_mat(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_add(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_mul(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_div(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_scale(IntPtr ctx, IntPtr a, float s);
    [LibraryImport(Base)] public static partial IntPtr ggml_norm(IntPtr ctx, IntPtr a, float eps);
    [LibraryImport(Base)] public static partial IntPtr ggml_gelu_erf(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_silu(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_sin(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_sqr(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_tanh(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_soft_max_ext(IntPtr ctx, IntPtr a, IntPtr mask, float scale, float max_bias);
    [LibraryImport(Base)] public static partial IntPtr ggml_permute(IntPtr ctx, IntPtr a, int axis0, int axis1, int axis2, int axis3);
    [LibraryImport(Base)] public static partial IntPtr ggml_cont(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_reshape_2d(IntPtr ctx, IntPtr a, long ne0, long ne1);
    [LibraryImport(Base)] public static partial IntPtr ggml_reshape_3d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2);
    [LibraryImport(Base)] public static partial IntPtr ggml_reshape_4d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2, long ne3);
    [LibraryImport(Base)] public static partial IntPtr ggml_view_2d(IntPtr ctx, IntPtr a, long ne0, long ne1, nuint nb1, nuint offset);
    [LibraryImport(Base)] public static partial IntPtr ggml_view_3d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2, nuint nb1, nuint nb2, nuint offset);
    [LibraryImport(Base)] public static partial IntPtr ggml_transpose(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_concat(IntPtr ctx, IntPtr a, IntPtr b, int dim);
    [LibraryImport(Base)] public static partial IntPtr ggml_im2col(IntPtr ctx, IntPtr a, IntPtr b, int s0, int s1, int p0, int p1, int d0, int d1, [MarshalAs(UnmanagedType.U1)] bool is_2D, GgmlElementType dst_type);
    [LibraryImport(Base)] public static partial IntPtr ggml_conv_2d_dw_direct(IntPtr ctx, IntPtr a, IntPtr b, int stride0, int stride1, int pad0, int pad1, int dilation0, int dilation1);
    [LibraryImport(Base)] public static partial IntPtr ggml_conv_transpose_1d(IntPtr ctx, IntPtr a, IntPtr b, int s0, int p0, int d0);
    [LibraryImport(Base)] public static partial IntPtr ggml_pad_ext(IntPtr ctx, IntPtr a, int lp0, int rp0, int lp1, int rp1, int lp2, int rp2, int lp3, int rp3);
    [LibraryImport(Base)] public static partial IntPtr ggml_get_rows(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_flash_attn_ext(IntPtr ctx, IntPtr q, IntPtr k, IntPtr v, IntPtr mask, float scale, float max_bias, float logit_softcap);
    [LibraryImport(Base)] public static partial IntPtr ggml_cast(IntPtr ctx, IntPtr a, GgmlElementType type);
    [LibraryImport(Base)] public static partial IntPtr ggml_repeat_4d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2, long ne3);
    [LibraryImport(Base)] public static unsafe partial IntPtr ggml_custom_4d(IntPtr ctx, GgmlElementType type, long ne0, long ne1, long ne2, long ne3, IntPtr* args, int n_args, delegate* unmanaged[Cdecl]<IntPtr, int, int, IntPtr, void> fun, int n_tasks, IntPtr userdata);

    /// <summary><c>GGML_N_TASKS_MAX</c>: a custom op runs on every thread of the backend.</summary>
    public const int AllThreads = -1;

    // Backends, buffers, scheduler
    [LibraryImport(Base)] public static partial void ggml_backend_free(IntPtr backend);
    [LibraryImport(Base)] public static partial IntPtr ggml_backend_alloc_ctx_tensors(IntPtr ctx, IntPtr backend);
    [LibraryImport(Base)] public static partial void ggml_backend_buffer_free(IntPtr buffer);
    [LibraryImport(Base)] public static unsafe partial void ggml_backend_tensor_set(IntPtr tensor, void* data, nuint offset, nuint size);
    [LibraryImport(Base)] public static unsafe partial void ggml_backend_tensor_get(IntPtr tensor, void* data, nuint offset, nuint size);
    [LibraryImport(Base)] public static unsafe partial IntPtr ggml_backend_sched_new(IntPtr* backends, IntPtr* bufts, int n_backends, nuint graph_size, [MarshalAs(UnmanagedType.U1)] bool parallel, [MarshalAs(UnmanagedType.U1)] bool op_offload);
    [LibraryImport(Base)] public static partial void ggml_backend_sched_free(IntPtr sched);
    [LibraryImport(Base)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool ggml_backend_sched_reserve(IntPtr sched, IntPtr graph);
    [LibraryImport(Base)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool ggml_backend_sched_alloc_graph(IntPtr sched, IntPtr graph);
    [LibraryImport(Base)] public static partial int ggml_backend_sched_graph_compute(IntPtr sched, IntPtr graph);
    [LibraryImport(Base)] public static partial void ggml_backend_sched_reset(IntPtr sched);
    [LibraryImport(Base)] public static partial nuint ggml_backend_sched_get_buffer_size(IntPtr sched, IntPtr backend);

    // Devices (the registry lives in libggml)
    [LibraryImport(Registry)] public static partial nuint ggml_backend_dev_count();
    [LibraryImport(Registry)] public static partial IntPtr ggml_backend_dev_get(nuint index);
    [LibraryImport(Base)] public static partial GgmlDeviceType ggml_backend_dev_type(IntPtr device);
    [LibraryImport(Base)] public static partial IntPtr ggml_backend_dev_name(IntPtr device);
    [LibraryImport(Base, StringMarshalling = StringMarshalling.Utf8)] public static partial IntPtr ggml_backend_dev_init(IntPtr device, string? parameters);

    // CPU backend
    [LibraryImport(Cpu)] public static partial IntPtr ggml_backend_cpu_init();
    [LibraryImport(Cpu)] public static partial void ggml_backend_cpu_set_n_threads(IntPtr backend_cpu, int n_threads);
}
