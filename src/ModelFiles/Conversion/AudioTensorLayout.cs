using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>One tensor the audio file must hold: its original PyTorch name and shape.</summary>
public sealed record TensorSlot(string SourceName, long[] Shape)
{
    /// <summary>The name in the audio GGUF: the original name under a component prefix.</summary>
    public string GgufName(string prefix) => prefix + SourceName;
}

/// <summary>
/// The name table of the audio file: which original tensors the encoder, adapter and codec need, with their shapes,
/// derived from the hyper-parameters. Conversion copies exactly these (checking shapes); synthesis fills exactly these.
/// </summary>
public static class AudioTensorLayout
{
    /// <summary>Whisper's encoder, by openai <c>small.pt</c> names.</summary>
    public static IEnumerable<TensorSlot> Whisper(WhisperShape shape)
    {
        long w = shape.Width;
        yield return new("encoder.conv1.weight", [w, shape.MelBins, 3]);
        yield return new("encoder.conv1.bias", [w]);
        yield return new("encoder.conv2.weight", [w, w, 3]);
        yield return new("encoder.conv2.bias", [w]);
        yield return new("encoder.positional_embedding", [shape.Context, w]);
        for (int i = 0; i < shape.LayerCount; i++)
        {
            string block = $"encoder.blocks.{i}.";
            yield return new(block + "attn.query.weight", [w, w]);
            yield return new(block + "attn.query.bias", [w]);
            yield return new(block + "attn.key.weight", [w, w]); // Whisper's key projection has no bias.
            yield return new(block + "attn.value.weight", [w, w]);
            yield return new(block + "attn.value.bias", [w]);
            yield return new(block + "attn.out.weight", [w, w]);
            yield return new(block + "attn.out.bias", [w]);
            yield return new(block + "attn_ln.weight", [w]);
            yield return new(block + "attn_ln.bias", [w]);
            yield return new(block + "mlp.0.weight", [4 * w, w]);
            yield return new(block + "mlp.0.bias", [4 * w]);
            yield return new(block + "mlp.2.weight", [w, 4 * w]);
            yield return new(block + "mlp.2.bias", [w]);
            yield return new(block + "mlp_ln.weight", [w]);
            yield return new(block + "mlp_ln.bias", [w]);
        }

        yield return new("encoder.ln_post.weight", [w]);
        yield return new("encoder.ln_post.bias", [w]);
    }

    /// <summary>The adapter from Whisper features to backbone embeddings, by litgpt names.</summary>
    public static IEnumerable<TensorSlot> Adapter(string adapterType, int whisperWidth, int intermediate, int embedding)
    {
        switch (adapterType)
        {
            case "llamamlp":
                yield return new("whisper_adapter.fc_1.weight", [intermediate, whisperWidth]);
                yield return new("whisper_adapter.fc_2.weight", [intermediate, whisperWidth]);
                yield return new("whisper_adapter.proj.weight", [embedding, intermediate]);
                break;
            case "mlp":
                yield return new("whisper_adapter.weight", [embedding, whisperWidth]);
                yield return new("whisper_adapter.bias", [embedding]);
                break;
            default:
                throw new ArgumentException($"Adapter type '{adapterType}' is not supported (llamamlp or mlp).", nameof(adapterType));
        }
    }

    /// <summary>SNAC's decoder and the codebook lookups it starts from, by the original names (weight norm folded).</summary>
    public static IEnumerable<TensorSlot> Snac(SnacShape shape)
    {
        long latent = shape.LatentDim;
        for (int q = 0; q < shape.Strides.Count; q++)
        {
            string quantizer = $"quantizer.quantizers.{q}.";
            yield return new(quantizer + "codebook.weight", [shape.CodebookSize, shape.CodebookDim]);
            yield return new(quantizer + "out_proj.weight", [latent, shape.CodebookDim, 1]);
            yield return new(quantizer + "out_proj.bias", [latent]);
        }

        int index = 0;
        if (shape.Depthwise)
        {
            yield return new($"decoder.model.{index}.weight", [latent, 1, 7]);
            yield return new($"decoder.model.{index++}.bias", [latent]);
            yield return new($"decoder.model.{index}.weight", [shape.DecoderDim, latent, 1]);
            yield return new($"decoder.model.{index++}.bias", [shape.DecoderDim]);
        }
        else
        {
            yield return new($"decoder.model.{index}.weight", [shape.DecoderDim, latent, 7]);
            yield return new($"decoder.model.{index++}.bias", [shape.DecoderDim]);
        }

        long channels = shape.DecoderDim;
        foreach (int rate in shape.DecoderRates)
        {
            long output = channels / 2;
            string block = $"decoder.model.{index++}.block.";
            int part = 0;
            yield return new($"{block}{part++}.alpha", [1, channels, 1]);
            yield return new($"{block}{part}.weight", [channels, output, 2 * rate]);
            yield return new($"{block}{part++}.bias", [output]);
            if (shape.Noise)
            {
                yield return new($"{block}{part++}.linear.weight", [output, output, 1]);
            }

            for (int unit = 0; unit < 3; unit++)
            {
                string residual = $"{block}{part++}.block.";
                yield return new(residual + "0.alpha", [1, output, 1]);
                yield return new(residual + "1.weight", [output, shape.Depthwise ? 1 : output, 7]);
                yield return new(residual + "1.bias", [output]);
                yield return new(residual + "2.alpha", [1, output, 1]);
                yield return new(residual + "3.weight", [output, output, 1]);
                yield return new(residual + "3.bias", [output]);
            }

            channels = output;
        }

        yield return new($"decoder.model.{index++}.alpha", [1, channels, 1]);
        yield return new($"decoder.model.{index}.weight", [1, channels, 7]);
        yield return new($"decoder.model.{index}.bias", [1]);
    }

    /// <summary>All slots with the GGUF names they take in the audio file.</summary>
    public static IEnumerable<(string GgufName, TensorSlot Slot)> All(AudioFileDescription description, int adapterIntermediate) =>
        Whisper(description.Whisper).Select(s => (s.GgufName(MiniOmniGgufKeys.WhisperTensorPrefix), s))
            .Concat(Adapter(description.AdapterType, description.Whisper.Width, adapterIntermediate, description.EmbeddingLength).Select(s => (s.SourceName, s)))
            .Concat(Snac(description.Snac).Select(s => (s.GgufName(MiniOmniGgufKeys.SnacTensorPrefix), s)));
}
