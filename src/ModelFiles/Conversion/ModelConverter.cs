using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles.Checkpoints;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>Where the three original releases are.</summary>
/// <param name="CheckpointDirectory">Mini-Omni: <c>lit_model.pth</c>, <c>model_config.yaml</c>, <c>tokenizer.json</c>.</param>
/// <param name="Whisper">openai <c>small.pt</c>, or a Hugging Face <c>openai/whisper-small</c> directory.</param>
/// <param name="SnacDirectory">SNAC 24 kHz: <c>config.json</c> and <c>pytorch_model.bin</c>.</param>
public sealed record ConversionSources(string CheckpointDirectory, string Whisper, string SnacDirectory);

/// <summary>Converts the original releases into a MiniOmni.SK model directory (backbone GGUF plus audio GGUF).</summary>
public static class ModelConverter
{
    /// <summary>Reads, checks and converts <paramref name="sources"/> into <paramref name="outputDirectory"/>.</summary>
    public static ModelDirectory Convert(
        ConversionSources sources,
        string outputDirectory,
        ModelFileType type,
        IProgress<ConversionProgress>? progress = null,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        using var miniOmni = MiniOmniCheckpoint.Open(sources.CheckpointDirectory);
        using var whisper = WhisperCheckpoint.Open(sources.Whisper);
        using var snac = SnacCheckpoint.Open(sources.SnacDirectory);

        var config = miniOmni.Config;
        string configPath = miniOmni.ConfigPath;
        var backbone = new BackboneShape(
            config.Name ?? "mini-omni",
            config.NLayer,
            config.NHead,
            config.NQueryGroups,
            config.HeadSize,
            config.NEmbd,
            config.IntermediateSize,
            (float)config.NormEps,
            (float)config.RopeBase,
            config.PaddedVocabSize,
            config.BlockSize);
        RequireSupported(configPath, config);

        var whisperShape = new WhisperShape(whisper.Dims.NMels, whisper.Dims.NAudioCtx, whisper.Dims.NAudioState, whisper.Dims.NAudioHead, whisper.Dims.NAudioLayer);
        if (config.WhisperAdapterDim != whisperShape.Width)
        {
            throw new ModelFileException(configPath, $"the adapter expects Whisper features of width {config.WhisperAdapterDim}, but {sources.Whisper} has width {whisperShape.Width}.", "whisper_adapter_dim");
        }

        var snacConfig = snac.Config;
        var snacShape = new SnacShape(snacConfig.SamplingRate, snacConfig.LatentDim, snacConfig.DecoderDim, snacConfig.DecoderRates,
            snacConfig.CodebookSize, snacConfig.CodebookDim, snacConfig.VqStrides, snacConfig.Noise, snacConfig.Depthwise);
        int paddedAudioVocabulary = config.AudioVocabSize;
        var audio = new AudioFileDescription(
            backbone.Name, type, config.PaddedVocabSize, config.TextVocabSize, paddedAudioVocabulary,
            AudioLayerCount: 7, config.NEmbd, SpecialTokens.FromVocabularies(config.TextVocabSize, paddedAudioVocabulary),
            whisperShape, config.AsrAdapter, snacShape);

        // Every tensor is found and its shape checked here, before anything is written:
        // a wrong file fails in seconds, not after gigabytes.
        var audioTensors = new List<AudioTensor>();
        foreach (var slot in AudioTensorLayout.Whisper(whisperShape))
        {
            audioTensors.Add(new(slot.GgufName(Gguf.MiniOmniGgufKeys.WhisperTensorPrefix), slot.Shape, whisper.Get(slot.SourceName, slot.Shape).ReadFloat32));
        }

        foreach (var slot in AudioTensorLayout.Adapter(config.AsrAdapter, whisperShape.Width, config.IntermediateSize, config.NEmbd))
        {
            audioTensors.Add(new(slot.SourceName, slot.Shape, miniOmni.Weights.Get(slot.SourceName, slot.Shape).ReadFloat32));
        }

        foreach (var slot in AudioTensorLayout.Snac(snacShape))
        {
            audioTensors.Add(new(slot.GgufName(Gguf.MiniOmniGgufKeys.SnacTensorPrefix), slot.Shape, snac.Get(slot.SourceName, slot.Shape).ReadFloat32));
        }

        var tokenizer = HfTokenizer.Load(miniOmni.TokenizerPath, backbone.RowCount);
        var content = new ModelSetContent(
            backbone,
            tokenizer,
            (name, shape) => miniOmni.Weights.Get(name, shape).ReadFloat32,
            audio,
            audioTensors,
            sources.CheckpointDirectory);
        return ModelSetWriter.Write(outputDirectory, content, type, progress, logger, cancellationToken);
    }

    private static void RequireSupported(string configPath, LitGptConfig config)
    {
        if (config.PostAdapter)
        {
            throw new ModelFileException(configPath, "post_adapter models are not supported (the release has none).", "post_adapter");
        }

        if (config.TieWordEmbeddings)
        {
            throw new ModelFileException(configPath, "tied embeddings are not supported (the release has a separate lm_head).", "tie_word_embeddings");
        }

        if (!config.AddQkvBias || config.Bias)
        {
            throw new ModelFileException(configPath, "Mini-Omni's Qwen2 has q/k/v biases and no other bias.", config.Bias ? "bias" : "add_qkv_bias");
        }
    }
}
