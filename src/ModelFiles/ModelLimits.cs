namespace MiniOmni.SK.ModelFiles;

/// <summary>
/// The ranges model files are held to, at conversion and at load. Each is far beyond any real Mini-Omni (Qwen2-0.5B,
/// Whisper-small, SNAC 24 kHz) and far below what would overflow a size or exhaust memory before a shape check: a
/// number read from a file is checked against these before anything is allocated from it.
/// </summary>
public static class ModelLimits
{
    /// <summary>Transformer blocks (llama.cpp's LLAMA_MAX_LAYERS).</summary>
    public const int MaxLayers = 512;

    /// <summary>Attention heads.</summary>
    public const int MaxHeads = 1024;

    /// <summary>Embedding and hidden widths.</summary>
    public const int MaxWidth = 1 << 16;

    /// <summary>Feed-forward widths.</summary>
    public const int MaxFeedForward = 1 << 18;

    /// <summary>Rows of a vocabulary (embedding table, output head).</summary>
    public const int MaxVocabulary = 1 << 24;

    /// <summary>Positions of a context.</summary>
    public const int MaxContext = 1 << 20;

    /// <summary>Whisper encoder blocks.</summary>
    public const int MaxWhisperLayers = 128;

    /// <summary>SNAC upsampling blocks.</summary>
    public const int MaxSnacBlocks = 16;

    /// <summary>One SNAC upsampling rate.</summary>
    public const int MaxSnacRate = 64;

    /// <summary>Codes of one SNAC codebook.</summary>
    public const int MaxCodebookSize = 1 << 16;

    /// <summary>Output sample rates, in Hz.</summary>
    public const int MaxSampleRate = 384_000;

    /// <summary>Mel bins of Whisper's log-mel front end, which MiniOmni.SK computes itself.</summary>
    public const int WhisperMelBins = 80;

    /// <summary>Whisper's encoder positions: 30 s of 10 ms mel frames, halved by its second convolution.</summary>
    public const int WhisperContext = 1500;

    /// <summary>The codebook strides of SNAC 24 kHz: one, two and four codes per frame, which the delay pattern's seven layers assume.</summary>
    public static IReadOnlyList<int> SnacStrides { get; } = [4, 2, 1];

    /// <summary>Checks <paramref name="value"/> lies in [<paramref name="min"/>, <paramref name="max"/>], naming <paramref name="key"/> of <paramref name="path"/> when not.</summary>
    public static int InRange(long value, long min, long max, string path, string key) =>
        value >= min && value <= max ? (int)value : throw new ModelFileException(path, $"{value} is outside {min}..{max}.", key);
}
