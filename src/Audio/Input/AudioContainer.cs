using System.Text;

namespace MiniOmni.SK.Audio;

/// <summary>The containers the decoder tells apart by their first bytes.</summary>
internal enum AudioContainer
{
    Unknown,
    Wav,
    Mp3,
}

/// <summary>Recognises a container from its header bytes, and names common ones it cannot decode.</summary>
internal static class AudioContainerSniffer
{
    /// <summary>Bytes to read before sniffing: enough for every signature below.</summary>
    public const int HeaderLength = 12;

    private static readonly (string Signature, int Offset, string Name)[] UnsupportedSignatures =
    [
        ("OggS", 0, "Ogg (Vorbis/Opus)"),
        ("fLaC", 0, "FLAC"),
        ("ftyp", 4, "MP4/M4A"),
        ("FORM", 0, "AIFF"),
        ("#!AMR", 0, "AMR"),
        ("caff", 0, "Core Audio (CAF)"),
        ("\u001A\u0045\u00DF\u00A3", 0, "Matroska/WebM"),
    ];

    /// <summary>Identifies the container from the start of the input.</summary>
    public static AudioContainer Sniff(ReadOnlySpan<byte> header)
    {
        if (header.Length >= 12 && (Matches(header, "RIFF", 0) || Matches(header, "RF64", 0)) && Matches(header, "WAVE", 8))
        {
            return AudioContainer.Wav;
        }

        if (Matches(header, "ID3", 0) || IsMpegAudioFrameSync(header))
        {
            return AudioContainer.Mp3;
        }

        return AudioContainer.Unknown;
    }

    /// <summary>The container the caller declared through a media type or a file extension, if it names one.</summary>
    public static AudioContainer FromMediaTypeOrExtension(string? mediaTypeOrExtension)
    {
        switch (mediaTypeOrExtension?.Trim().ToLowerInvariant())
        {
            case "audio/wav" or "audio/x-wav" or "audio/wave" or "audio/vnd.wave" or ".wav" or ".wave":
                return AudioContainer.Wav;
            case "audio/mpeg" or "audio/mp3" or "audio/mpeg3" or "audio/x-mpeg-3" or ".mp3":
                return AudioContainer.Mp3;
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
