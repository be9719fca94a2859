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
}

/// <summary>Parsing and naming of <see cref="ModelFileType"/> as the command line spells it.</summary>
public static class ModelFileTypes
{
    /// <summary>The lower-case names: f32, f16, q8_0, q4_k_m.</summary>
    public static IReadOnlyList<string> Names { get; } = ["f32", "f16", "q8_0", "q4_k_m"];

    /// <summary>Parses a lower-case name; anything else is an <see cref="ArgumentException"/> listing the choices.</summary>
    public static ModelFileType Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" => ModelFileType.F32,
        "f16" => ModelFileType.F16,
        "q8_0" => ModelFileType.Q8_0,
        "q4_k_m" => ModelFileType.Q4_K_M,
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
}
