using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Speech;

/// <summary>
/// The hyper-parameters and special ids stated by an audio GGUF (see <see cref="MiniOmniGgufKeys"/>): nothing the
/// file can say is hard-coded in the runtime.
/// </summary>
internal sealed record AudioModelParameters(
    WhisperShape Whisper,
    string AdapterType,
    int EmbeddingLength,
    SnacShape Snac,
    SpecialTokens Tokens,
    int PaddedVocabularySize,
    int TextVocabularySize,
    int AudioVocabularySize,
    int AudioLayerCount,
    int InputSampleRate)
{
    /// <summary>Whisper's LayerNorm epsilon (PyTorch's default, which Whisper keeps).</summary>
    public const float WhisperNormEpsilon = 1e-5f;

    /// <summary>Reads and checks the parameters of <paramref name="file"/>.</summary>
    public static AudioModelParameters Read(GgufFile file)
    {
        string architecture = file.GetString(MiniOmniGgufKeys.Architecture);
        if (architecture != MiniOmniGgufKeys.AudioArchitecture)
        {
            throw new ModelFileException(file.Path, $"architecture '{architecture}' is not MiniOmni.SK's audio file ('{MiniOmniGgufKeys.AudioArchitecture}').", MiniOmniGgufKeys.Architecture);
        }

        int Int(string key) => checked((int)file.GetInteger(key));
        var whisper = new WhisperShape(Int(MiniOmniGgufKeys.WhisperMelBins), Int(MiniOmniGgufKeys.WhisperContext), Int(MiniOmniGgufKeys.WhisperWidth), Int(MiniOmniGgufKeys.WhisperHeads), Int(MiniOmniGgufKeys.WhisperLayers));
        if (whisper.Width % whisper.HeadCount != 0)
        {
            throw new ModelFileException(file.Path, $"Whisper width {whisper.Width} does not split into {whisper.HeadCount} heads.", MiniOmniGgufKeys.WhisperHeads);
        }

        var snac = new SnacShape(
            Int(MiniOmniGgufKeys.SnacSampleRate), Int(MiniOmniGgufKeys.SnacLatentDim), Int(MiniOmniGgufKeys.SnacDecoderDim),
            file.GetArray<int>(MiniOmniGgufKeys.SnacDecoderRates), Int(MiniOmniGgufKeys.SnacCodebookSize), Int(MiniOmniGgufKeys.SnacCodebookDim),
            file.GetArray<int>(MiniOmniGgufKeys.SnacStrides), file.GetBool(MiniOmniGgufKeys.SnacNoise, false), file.GetBool(MiniOmniGgufKeys.SnacDepthwise, false));
        var tokens = new SpecialTokens(
            Int(MiniOmniGgufKeys.TokenEndOfText), Int(MiniOmniGgufKeys.TokenPadText), Int(MiniOmniGgufKeys.TokenInputText), Int(MiniOmniGgufKeys.TokenAnswerText), Int(MiniOmniGgufKeys.TokenAsr),
            Int(MiniOmniGgufKeys.TokenEndOfAudio), Int(MiniOmniGgufKeys.TokenPadAudio), Int(MiniOmniGgufKeys.TokenInputAudio), Int(MiniOmniGgufKeys.TokenAnswerAudio));
        return new AudioModelParameters(
            whisper, file.GetString(MiniOmniGgufKeys.AdapterType), Int(MiniOmniGgufKeys.EmbeddingLength), snac, tokens,
            Int(MiniOmniGgufKeys.PaddedVocabularySize), Int(MiniOmniGgufKeys.TextVocabularySize), Int(MiniOmniGgufKeys.AudioVocabularySize),
            Int(MiniOmniGgufKeys.AudioLayerCount), Int(MiniOmniGgufKeys.WhisperSampleRate));
    }

    /// <summary>Samples of 24 kHz speech per SNAC frame: the product of the decoder's upsampling rates times codebook 0's stride.</summary>
    public int SamplesPerFrame => Snac.DecoderRates.Aggregate(1, (a, b) => a * b) * Snac.Strides[0];
}
