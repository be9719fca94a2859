namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>
/// Metadata keys of MiniOmni.SK's audio GGUF. Every hyper-parameter and special id the runtime needs is
/// written here at conversion, so nothing is hard-coded that the file can say.
/// </summary>
public static class MiniOmniGgufKeys
{
    /// <summary>The value of <c>general.architecture</c> in the audio file.</summary>
    public const string AudioArchitecture = "miniomni-audio";

    /// <summary>
    /// Marks a backbone file written without its output head (the head lives in the vocabulary file); files of
    /// earlier versions, whose llama.cpp head computed all 181120 rows per step, lack it.
    /// </summary>
    public const string HeadlessBackbone = "miniomni.backbone.headless";

    /// <summary>Model name, <c>general.name</c>.</summary>
    public const string Name = "general.name";
    /// <summary><c>general.architecture</c>.</summary>
    public const string Architecture = "general.architecture";
    /// <summary>The conversion type (one of <see cref="Conversion.ModelFileTypes.Names"/>).</summary>
    public const string FileType = "miniomni.file_type";

    /// <summary>Rows of the backbone's embedding and output head (181120).</summary>
    public const string PaddedVocabularySize = "miniomni.vocab.padded_size";
    /// <summary>Rows of the text head (152000); audio rows start here.</summary>
    public const string TextVocabularySize = "miniomni.vocab.text_size";
    /// <summary>Rows per audio layer (4160).</summary>
    public const string AudioVocabularySize = "miniomni.vocab.audio_size";
    /// <summary>Number of audio layers (7).</summary>
    public const string AudioLayerCount = "miniomni.vocab.audio_layers";
    /// <summary>Backbone embedding width (896).</summary>
    public const string EmbeddingLength = "miniomni.embedding_length";

    /// <summary>Text specials (before any shift): end of text.</summary>
    public const string TokenEndOfText = "miniomni.token.eot";
    /// <summary>Text pad.</summary>
    public const string TokenPadText = "miniomni.token.pad_t";
    /// <summary>Text input marker.</summary>
    public const string TokenInputText = "miniomni.token.input_t";
    /// <summary>Text answer marker.</summary>
    public const string TokenAnswerText = "miniomni.token.answer_t";
    /// <summary>Transcription task marker.</summary>
    public const string TokenAsr = "miniomni.token.asr";
    /// <summary>Audio specials (before the layer shift): end of audio.</summary>
    public const string TokenEndOfAudio = "miniomni.token.eoa";
    /// <summary>Audio pad.</summary>
    public const string TokenPadAudio = "miniomni.token.pad_a";
    /// <summary>Audio input marker.</summary>
    public const string TokenInputAudio = "miniomni.token.input_a";
    /// <summary>Audio answer marker.</summary>
    public const string TokenAnswerAudio = "miniomni.token.answer_a";

    /// <summary>Whisper mel bins (80).</summary>
    public const string WhisperMelBins = "miniomni.whisper.n_mels";
    /// <summary>Whisper encoder positions (1500).</summary>
    public const string WhisperContext = "miniomni.whisper.n_ctx";
    /// <summary>Whisper width (768).</summary>
    public const string WhisperWidth = "miniomni.whisper.n_state";
    /// <summary>Whisper attention heads (12).</summary>
    public const string WhisperHeads = "miniomni.whisper.n_head";
    /// <summary>Whisper encoder blocks (12).</summary>
    public const string WhisperLayers = "miniomni.whisper.n_layer";
    /// <summary>Input sample rate (16000).</summary>
    public const string WhisperSampleRate = "miniomni.whisper.sample_rate";

    /// <summary>Adapter kind: llamamlp or mlp.</summary>
    public const string AdapterType = "miniomni.adapter.type";

    /// <summary>SNAC output sample rate (24000).</summary>
    public const string SnacSampleRate = "miniomni.snac.sample_rate";
    /// <summary>SNAC latent width (768).</summary>
    public const string SnacLatentDim = "miniomni.snac.latent_dim";
    /// <summary>SNAC decoder width (1024).</summary>
    public const string SnacDecoderDim = "miniomni.snac.decoder_dim";
    /// <summary>SNAC decoder upsampling rates (8, 8, 4, 2).</summary>
    public const string SnacDecoderRates = "miniomni.snac.decoder_rates";
    /// <summary>SNAC codes per codebook (4096).</summary>
    public const string SnacCodebookSize = "miniomni.snac.codebook_size";
    /// <summary>SNAC codebook vector width (8).</summary>
    public const string SnacCodebookDim = "miniomni.snac.codebook_dim";
    /// <summary>SNAC codebook strides (4, 2, 1).</summary>
    public const string SnacStrides = "miniomni.snac.vq_strides";
    /// <summary>Whether the decoder has noise blocks.</summary>
    public const string SnacNoise = "miniomni.snac.noise";
    /// <summary>Whether the decoder's first conv is depthwise.</summary>
    public const string SnacDepthwise = "miniomni.snac.depthwise";

    /// <summary>Prefix of Whisper encoder tensors: openai names follow it (<c>whisper.encoder.conv1.weight</c>).</summary>
    public const string WhisperTensorPrefix = "whisper.";
    /// <summary>Prefix of SNAC tensors, original names with weight norm folded (<c>snac.decoder.model.0.weight</c>).</summary>
    public const string SnacTensorPrefix = "snac.";
}
