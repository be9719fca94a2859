namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>The weight types a conversion can produce.</summary>
public enum ModelFileType
{
    /// <summary>Everything in float32: the parity reference.</summary>
    F32,
    /// <summary>Matrices in float16, vectors in float32.</summary>
    F16,
    /// <summary>Backbone and encoder matrices in 8-bit blocks (Q8_0); the codec is stored in float32 and its large matrices quantized to Q8_0 at load.</summary>
    Q8_0,
    /// <summary>Backbone in llama.cpp's Q4_K_M mix with Q8_0 token embeddings; encoder matrices Q8_0; the codec as for <see cref="Q8_0"/>.</summary>
    Q4_K_M,
    /// <summary>
    /// Backbone matrices in 4-bit blocks (Q4_0), which llama.cpp's CPU backend repacks at load into interleaved blocks
    /// on x86 (AVX2) and Arm; everything else as for <see cref="Q8_0"/>.
    /// </summary>
    Q4_0,
    /// <summary>Backbone matrices in llama.cpp's non-linear 4-bit blocks (IQ4_NL), also repacked at load on x86 and Arm; everything else as for <see cref="Q8_0"/>.</summary>
    IQ4_NL,
    /// <summary>
    /// Backbone feed-forward matrices (nine tenths of its weights) in Q4_0, attention matrices in Q8_0, written by
    /// MiniOmni.SK itself; everything else as for <see cref="Q8_0"/>.
    /// </summary>
    Q4_0_Mixed,
}

/// <summary>Parsing and naming of <see cref="ModelFileType"/> as the command line spells it.</summary>
public static class ModelFileTypes
{
    /// <summary>The lower-case names, in the enum's order: f32, f16, q8_0, q4_k_m, q4_0, iq4_nl, q4_0_mixed.</summary>
    public static IReadOnlyList<string> Names { get; } = ["f32", "f16", "q8_0", "q4_k_m", "q4_0", "iq4_nl", "q4_0_mixed"];

    /// <summary>Parses a lower-case name; anything else is an <see cref="ArgumentException"/> listing the choices.</summary>
    public static ModelFileType Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" => ModelFileType.F32,
        "f16" => ModelFileType.F16,
        "q8_0" => ModelFileType.Q8_0,
        "q4_k_m" => ModelFileType.Q4_K_M,
        "q4_0" => ModelFileType.Q4_0,
        "iq4_nl" => ModelFileType.IQ4_NL,
        "q4_0_mixed" => ModelFileType.Q4_0_Mixed,
        _ => throw new ArgumentException($"Unknown model type '{name}'; choose one of {string.Join(", ", Names)}.", nameof(name)),
    };

    /// <summary>The lower-case name of <paramref name="type"/>.</summary>
    public static string ToName(this ModelFileType type) => Names[(int)type];

    /// <summary>
    /// How the matrices MiniOmni.SK writes itself are stored for <paramref name="type"/> (the encoder's and adapter's
    /// linear weights, the token embedding table, the output head): quantized types store them as Q8_0, while
    /// llama.cpp's quantizer picks the backbone's own types.
    /// </summary>
    public static Gguf.GgmlType OwnMatrixType(this ModelFileType type) => type switch
    {
        ModelFileType.F32 => Gguf.GgmlType.F32,
        ModelFileType.F16 => Gguf.GgmlType.F16,
        _ => Gguf.GgmlType.Q8_0,
    };

    /// <summary>
    /// How the engine holds the text head (the output head's 152000 text rows) for <paramref name="type"/>: Q4_0 for the
    /// 4-bit types, whose point is speed on a CPU (the text head is the largest matrix a step multiplies); null keeps
    /// the file's type. The audio heads always stay as the file stores them.
    /// </summary>
    public static Gguf.GgmlType? TextHeadType(this ModelFileType type) => type is ModelFileType.Q4_0 or ModelFileType.IQ4_NL or ModelFileType.Q4_0_Mixed ? Gguf.GgmlType.Q4_0 : null;

    /// <summary>Whether llama.cpp's quantizer writes the backbone of <paramref name="type"/> (every type but f32 and f16).</summary>
    public static bool IsQuantized(this ModelFileType type) => type is not (ModelFileType.F32 or ModelFileType.F16);
}
