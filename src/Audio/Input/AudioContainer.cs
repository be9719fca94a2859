using System.Text;

namespace MiniOmni.SK.Audio;

/// <summary>The containers the decoder tells apart by their first bytes.</summary>
internal enum AudioContainer
{
    Unknown,
    Wav,
    Mp3,
    Ogg,
    WebM,
}

/// <summary>Recognises a container from its header bytes or a declared media type, and names common ones it cannot decode.</summary>
internal static class AudioContainerSniffer
{
    /// <summary>Bytes to read before sniffing: enough for every signature below.</summary>
    public const int HeaderLength = 12;

    private static readonly (string Signature, int Offset, string Name)[] UnsupportedSignatures =
    [
        ("fLaC", 0, "FLAC"),
        ("ftyp", 4, "MP4/M4A"),
        ("FORM", 0, "AIFF"),
        ("#!AMR", 0, "AMR"),
        ("caff", 0, "Core Audio (CAF)"),
    ];

    /// <summary>Identifies the container from the start of the input.</summary>
    public static AudioContainer Sniff(ReadOnlySpan<byte> header)
    {
        if (header.Length >= 12 && (Matches(header, "RIFF", 0) || Matches(header, "RF64", 0)) && Matches(header, "WAVE", 8))
        {
            return AudioContainer.Wav;
        }

        if (Matches(header, "OggS", 0))
        {
            return AudioContainer.Ogg;
        }

        if (header.StartsWith(EbmlMagic))
        {
            return AudioContainer.WebM;
        }

        if (Matches(header, "ID3", 0) || IsMpegAudioFrameSync(header))
        {
            return AudioContainer.Mp3;
        }

        return AudioContainer.Unknown;
    }

    /// <summary>The first four bytes of every EBML document (Matroska, WebM).</summary>
    public static ReadOnlySpan<byte> EbmlMagic => [0x1A, 0x45, 0xDF, 0xA3];

    /// <summary>
    /// The container the caller declared through a media type (parameters such as <c>;codecs=opus</c> are ignored)
    /// or a file extension, if it names one; generic types such as <c>application/octet-stream</c> name none.
    /// </summary>
    public static AudioContainer FromMediaTypeOrExtension(string? mediaTypeOrExtension)
    {
        string? essence = mediaTypeOrExtension;
        int parameters = essence?.IndexOf(';') ?? -1;
        if (parameters >= 0)
        {
            essence = essence![..parameters];
        }

        switch (essence?.Trim().ToLowerInvariant())
        {
            case "audio/wav" or "audio/x-wav" or "audio/wave" or "audio/vnd.wave" or ".wav" or ".wave":
                return AudioContainer.Wav;
            case "audio/mpeg" or "audio/mp3" or "audio/mpeg3" or "audio/x-mpeg-3" or ".mp3":
                return AudioContainer.Mp3;
            case "audio/ogg" or "audio/opus" or "application/ogg" or "video/ogg" or "audio/x-opus+ogg" or ".ogg" or ".oga" or ".opus":
                return AudioContainer.Ogg;
            case "audio/webm" or "video/webm" or "audio/x-matroska" or "video/x-matroska" or ".webm" or ".mka" or ".mkv":
                return AudioContainer.WebM;
            default:
                return AudioContainer.Unknown;
        }
    }

    /// <summary>A readable name for a header this decoder does not read, for the error message.</summary>
    public static string DescribeUnsupported(ReadOnlySpan<byte> header)
    {
        foreach (var (signature, offset, name) in UnsupportedSignatures)
        {
            if (Matches(header, signature, offset))
            {
                return name;
            }
        }

        if (header.Length >= 2 && header[0] == 0xFF && (header[1] & 0xF6) == 0xF0)
        {
            return "AAC (ADTS)";
        }

        return $"unrecognised header bytes {Convert.ToHexString(header[..Math.Min(header.Length, 8)])}";
    }

    /// <summary>The name of a container for messages.</summary>
    public static string Describe(AudioContainer container) => container switch
    {
        AudioContainer.Wav => "WAV",
        AudioContainer.Mp3 => "MP3",
        AudioContainer.Ogg => "Ogg",
        AudioContainer.WebM => "WebM/Matroska",
        _ => "unknown",
    };

    private static bool Matches(ReadOnlySpan<byte> header, string signature, int offset)
    {
        if (header.Length < offset + signature.Length)
        {
            return false;
        }

        // Latin1 maps each char to the byte of the same value, so binary signatures work too.
        Span<byte> expected = stackalloc byte[signature.Length];
        Encoding.Latin1.GetBytes(signature, expected);
        return header.Slice(offset, signature.Length).SequenceEqual(expected);
    }

    private static bool IsMpegAudioFrameSync(ReadOnlySpan<byte> header)
    {
        // 11 sync bits, then a layer field that is not the reserved 00 (00 is how AAC's ADTS header starts).
        return header.Length >= 2 && header[0] == 0xFF && (header[1] & 0xE0) == 0xE0 && (header[1] & 0x06) != 0;
    }
}
