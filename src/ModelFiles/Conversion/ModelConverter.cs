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
            config.Name,
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
        backbone.Validate(configPath);

        var whisperShape = new WhisperShape(whisper.Dims.NMels, whisper.Dims.NAudioCtx, whisper.Dims.NAudioState, whisper.Dims.NAudioHead, whisper.Dims.NAudioLayer);
        if (config.WhisperAdapterDim != whisperShape.Width)
        {
            throw new ModelFileException(configPath, $"the adapter expects Whisper features of width {config.WhisperAdapterDim}, but {sources.Whisper} has width {whisperShape.Width}.", "whisper_adapter_dim");
        }

        var snacConfig = snac.Config;
        if (config.AudioVocabSize - LitGptConfig.ReservedSpecialIds > snacConfig.CodebookSize)
        {
            throw new ModelFileException(configPath, $"{config.AudioVocabSize} audio ids leave {config.AudioVocabSize - LitGptConfig.ReservedSpecialIds} codes per layer, more than SNAC's codebook of {snacConfig.CodebookSize} can decode.", "audio_vocab_size");
        }

        var snacShape = new SnacShape(snacConfig.SamplingRate, snacConfig.LatentDim, snacConfig.DecoderDim, snacConfig.DecoderRates,
            snacConfig.CodebookSize, snacConfig.CodebookDim, snacConfig.VqStrides, snacConfig.Noise, snacConfig.Depthwise);
        int paddedAudioVocabulary = config.AudioVocabSize;
        var audio = new AudioFileDescription(
            backbone.Name, type, config.PaddedVocabSize, config.TextVocabSize, paddedAudioVocabulary,
            LitGptConfig.AudioLayerCount, config.NEmbd, SpecialTokens.FromVocabularies(config.TextVocabSize, paddedAudioVocabulary),
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

        // litgpt ties the head to the token embeddings (lm_head.weight = transformer.wte.weight) when the config says so;
        // such a checkpoint holds both keys over one storage, or only the embeddings. Either way the head is read from
        // the embeddings, once.
        bool tied = config.TieWordEmbeddings || !miniOmni.Weights.Tensors.ContainsKey(BackboneGgufBuilder.HeadSourceName);
        if (tied)
        {
            logger?.LogInformation("The output head is tied to the token embeddings ({Reason}).", config.TieWordEmbeddings ? "tie_word_embeddings: true" : "the checkpoint has no lm_head.weight");
        }

        var tokenizer = HfTokenizer.Load(miniOmni.TokenizerPath, backbone.RowCount);
        var content = new ModelSetContent(
            backbone,
            tokenizer,
            (name, shape) => miniOmni.Weights.Get(name, shape).ReadFloat32,
            audio,
            audioTensors,
            sources.CheckpointDirectory,
            TiedHead: tied);
        return ModelSetWriter.Write(outputDirectory, content, type, progress, logger, cancellationToken);
    }
}
