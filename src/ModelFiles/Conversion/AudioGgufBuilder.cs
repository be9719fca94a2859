using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>The special ids of Mini-Omni's prompts (spec section 3), before any layer shift.</summary>
public sealed record SpecialTokens(int EndOfText, int PadText, int InputText, int AnswerText, int Asr, int EndOfAudio, int PadAudio, int InputAudio, int AnswerAudio)
{
    /// <summary>Mini-Omni reserves 64 specials at the end of each vocabulary and numbers them from its start, as the release does.</summary>
    public static SpecialTokens FromVocabularies(int paddedTextVocabulary, int paddedAudioVocabulary)
    {
        const int reserved = 64;
        int text = paddedTextVocabulary - reserved;
        int audio = paddedAudioVocabulary - reserved;
        return new SpecialTokens(text, text + 1, text + 2, text + 3, text + 4, audio, audio + 1, audio + 2, audio + 3);
    }
}

/// <summary>Whisper encoder hyper-parameters.</summary>
public sealed record WhisperShape(int MelBins, int Context, int Width, int HeadCount, int LayerCount);

/// <summary>SNAC decoder hyper-parameters.</summary>
public sealed record SnacShape(int SampleRate, int LatentDim, int DecoderDim, IReadOnlyList<int> DecoderRates, int CodebookSize, int CodebookDim, IReadOnlyList<int> Strides, bool Noise, bool Depthwise);

/// <summary>Everything the audio file states besides its tensors.</summary>
public sealed record AudioFileDescription(
    string Name,
    ModelFileType FileType,
    int PaddedVocabularySize,
    int TextVocabularySize,
    int AudioVocabularySize,
    int AudioLayerCount,
    int EmbeddingLength,
    SpecialTokens Tokens,
    WhisperShape Whisper,
    string AdapterType,
    SnacShape Snac);

/// <summary>One tensor going into the audio file: its GGUF name, PyTorch shape, and a reader for its float32 data.</summary>
public sealed record AudioTensor(string Name, long[] TorchShape, Func<float[]> Read);

/// <summary>Lays out MiniOmni.SK's audio GGUF: Whisper encoder, adapter and SNAC decoder, with all their hyper-parameters.</summary>
public static class AudioGgufBuilder
{
    /// <summary>Describes the audio file in <paramref name="writer"/>.</summary>
    public static void Describe(GgufWriter writer, AudioFileDescription description, IEnumerable<AudioTensor> tensors)
    {
        var tokens = description.Tokens;
        var whisper = description.Whisper;
        var snac = description.Snac;
        writer.Add(MiniOmniGgufKeys.Architecture, MiniOmniGgufKeys.AudioArchitecture)
            .Add(MiniOmniGgufKeys.Name, description.Name)
            .Add(MiniOmniGgufKeys.FileType, description.FileType.ToName())
            .Add(MiniOmniGgufKeys.PaddedVocabularySize, description.PaddedVocabularySize)
            .Add(MiniOmniGgufKeys.TextVocabularySize, description.TextVocabularySize)
            .Add(MiniOmniGgufKeys.AudioVocabularySize, description.AudioVocabularySize)
            .Add(MiniOmniGgufKeys.AudioLayerCount, description.AudioLayerCount)
            .Add(MiniOmniGgufKeys.EmbeddingLength, description.EmbeddingLength)
            .Add(MiniOmniGgufKeys.TokenEndOfText, tokens.EndOfText)
            .Add(MiniOmniGgufKeys.TokenPadText, tokens.PadText)
            .Add(MiniOmniGgufKeys.TokenInputText, tokens.InputText)
            .Add(MiniOmniGgufKeys.TokenAnswerText, tokens.AnswerText)
            .Add(MiniOmniGgufKeys.TokenAsr, tokens.Asr)
            .Add(MiniOmniGgufKeys.TokenEndOfAudio, tokens.EndOfAudio)
            .Add(MiniOmniGgufKeys.TokenPadAudio, tokens.PadAudio)
            .Add(MiniOmniGgufKeys.TokenInputAudio, tokens.InputAudio)
            .Add(MiniOmniGgufKeys.TokenAnswerAudio, tokens.AnswerAudio)
            .Add(MiniOmniGgufKeys.WhisperMelBins, whisper.MelBins)
            .Add(MiniOmniGgufKeys.WhisperContext, whisper.Context)
            .Add(MiniOmniGgufKeys.WhisperWidth, whisper.Width)
            .Add(MiniOmniGgufKeys.WhisperHeads, whisper.HeadCount)
            .Add(MiniOmniGgufKeys.WhisperLayers, whisper.LayerCount)
            .Add(MiniOmniGgufKeys.WhisperSampleRate, 16000)
            .Add(MiniOmniGgufKeys.AdapterType, description.AdapterType)
            .Add(MiniOmniGgufKeys.SnacSampleRate, snac.SampleRate)
            .Add(MiniOmniGgufKeys.SnacLatentDim, snac.LatentDim)
            .Add(MiniOmniGgufKeys.SnacDecoderDim, snac.DecoderDim)
            .Add(MiniOmniGgufKeys.SnacDecoderRates, snac.DecoderRates)
            .Add(MiniOmniGgufKeys.SnacCodebookSize, snac.CodebookSize)
            .Add(MiniOmniGgufKeys.SnacCodebookDim, snac.CodebookDim)
            .Add(MiniOmniGgufKeys.SnacStrides, snac.Strides)
            .Add(MiniOmniGgufKeys.SnacNoise, snac.Noise)
            .Add(MiniOmniGgufKeys.SnacDepthwise, snac.Depthwise);

        GgmlType matrixType = description.FileType.OwnMatrixType();
        foreach (var tensor in tensors)
        {
            long[] dims = [.. tensor.TorchShape.Reverse()];
            writer.AddTensor(tensor.Name, dims, StorageType(tensor, matrixType), tensor.Read);
        }
    }

    /// <summary>
    /// Linear weights of the encoder and adapter (the bulk of the file) take the matrix type; convolutions,
    /// embeddings, biases, norms and the codec stay f32, where f16 would cost parity for little space.
    /// </summary>
    private static GgmlType StorageType(AudioTensor tensor, GgmlType matrixType)
    {
        bool isLinearWeight = tensor.TorchShape.Length == 2 && tensor.Name.EndsWith(".weight", StringComparison.Ordinal)
            && !tensor.Name.StartsWith(MiniOmniGgufKeys.SnacTensorPrefix, StringComparison.Ordinal);
        // Q8_0 needs rows in whole blocks of 32; a narrower matrix keeps F16.
        long rowLength = tensor.TorchShape[^1];
        return !isLinearWeight ? GgmlType.F32
            : matrixType == GgmlType.Q8_0 && rowLength % GgmlTypeInfo.Block(GgmlType.Q8_0).BlockElements != 0 ? GgmlType.F16
            : matrixType;
    }
}
