using LLama.Native;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>Quantizes a backbone GGUF with llama.cpp's own quantizer (the one LLamaSharp ships).</summary>
internal static class LlamaQuantization
{
    /// <summary>
    /// Quantizes <paramref name="source"/> into <paramref name="destination"/>. Token embeddings become Q8_0 whatever the
    /// mix, because the embedding mix reads their rows in managed code and Q8_0 decodes exactly and cheaply.
    /// </summary>
    public static void Quantize(string source, string destination, ModelFileType type, int threads)
    {
        var ftype = type switch
        {
            ModelFileType.Q8_0 => LLamaFtype.MOSTLY_Q8_0,
            ModelFileType.Q4_K_M => LLamaFtype.MOSTLY_Q4_K_M,
            ModelFileType.Q4_0 => LLamaFtype.MOSTLY_Q4_0,
            ModelFileType.IQ4_NL => LLamaFtype.MOSTLY_IQ4_NL,
            _ => throw new ArgumentException($"{type} is written directly, not quantized.", nameof(type)),
        };

        // LLamaSharp binds its native library lazily; the quantizer needs it bound first.
        NativeApi.llama_empty_call();
        var parameters = LLamaModelQuantizeParams.Default();
        parameters.ftype = ftype;
        parameters.nthread = threads;
        parameters.token_embedding_type = GGMLType.GGML_TYPE_Q8_0;
        uint result = NativeApi.llama_model_quantize(source, destination, ref parameters);
        if (result != 0)
        {
            throw new ModelFileException(source, $"llama.cpp could not quantize the backbone to {type.ToName()} (code {result}).");
        }
    }
}
