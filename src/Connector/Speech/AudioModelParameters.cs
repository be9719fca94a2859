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

    /// <summary>
    /// Reads the parameters of <paramref name="file"/>, checked against each other and against the file's tensors
    /// (<see cref="AudioGgufChecks"/>) before any of it reaches ggml.
    /// </summary>
    public static AudioModelParameters Read(GgufFile file)
    {
        var (description, _, inputSampleRate) = AudioGgufChecks.Check(file);
        return new AudioModelParameters(
            description.Whisper, description.AdapterType, description.EmbeddingLength, description.Snac, description.Tokens,
            description.PaddedVocabularySize, description.TextVocabularySize, description.AudioVocabularySize,
            description.AudioLayerCount, inputSampleRate);
    }

    /// <summary>Samples of 24 kHz speech per SNAC frame: the product of the decoder's upsampling rates times codebook 0's stride.</summary>
    public int SamplesPerFrame => Snac.DecoderRates.Aggregate(1, (a, b) => a * b) * Snac.Strides[0];
}
