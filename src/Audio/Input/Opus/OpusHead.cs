using System.Buffers.Binary;

namespace MiniOmni.SK.Audio;

/// <summary>
/// The Opus identification header (RFC 7845 section 5.1), as Ogg carries it in its first packet and Matroska in the
/// track's CodecPrivate: channel count, pre-skip, output gain and channel mapping.
/// </summary>
internal sealed record OpusHead(int Channels, int PreSkip, short OutputGainQ8, int StreamCount, int CoupledCount, byte[] Mapping)
{
    /// <summary>Opus always decodes at 48 kHz; pre-skip and granule positions count samples at this rate.</summary>
    public const int SampleRate = 48000;

    /// <summary>The linear factor of the header's output gain (Q7.8 dB).</summary>
    public float GainFactor => (float)Math.Pow(10, OutputGainQ8 / (20.0 * 256));

    /// <summary>Parses and checks the header; every field is validated against RFC 7845 before a decoder is built from it.</summary>
    public static OpusHead Parse(ReadOnlySpan<byte> packet, string inputName, string where, long at)
    {
        if (packet.Length < 19 || !packet.StartsWith("OpusHead"u8))
        {
            throw Corrupt(inputName, $"{where} is not an Opus identification header ('OpusHead', 19 bytes or more).", at);
        }

        int version = packet[8];
        if (version >> 4 != 0)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.UnsupportedFormat, $"{where}: Opus header version {version} is not one this decoder reads (0.x).");
        }

        int channels = packet[9];
        int preSkip = BinaryPrimitives.ReadUInt16LittleEndian(packet[10..]);
        short gain = BinaryPrimitives.ReadInt16LittleEndian(packet[16..]);
        int family = packet[18];
        if (channels == 0)
        {
            throw Corrupt(inputName, $"{where} declares 0 channels.", at);
        }

        switch (family)
        {
            case 0:
                if (channels > 2)
                {
                    throw Corrupt(inputName, $"{where} declares {channels} channels with mapping family 0, which allows 1 or 2.", at);
                }

                return new OpusHead(channels, preSkip, gain, 1, channels - 1, channels == 1 ? [0] : [0, 1]);
            case 1:
                if (channels > 8)
                {
                    throw Corrupt(inputName, $"{where} declares {channels} channels with mapping family 1, which allows 1 to 8.", at);
                }

                if (packet.Length < 21 + channels)
                {
                    throw Corrupt(inputName, $"{where} is cut short: mapping family 1 needs {21 + channels} bytes, it has {packet.Length}.", at);
                }

                int streams = packet[19];
                int coupled = packet[20];
                byte[] mapping = packet.Slice(21, channels).ToArray();
                if (streams == 0 || coupled > streams || streams + coupled > 255)
                {
                    throw Corrupt(inputName, $"{where} declares {streams} streams of which {coupled} coupled.", at);
                }

                foreach (byte index in mapping)
                {
                    if (index != 255 && index >= streams + coupled)
                    {
                        throw Corrupt(inputName, $"{where} maps a channel to coded channel {index}, but there are {streams + coupled}.", at);
                    }
                }

                return new OpusHead(channels, preSkip, gain, streams, coupled, mapping);
            default:
                throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.UnsupportedFormat,
                    $"{where}: Opus channel mapping family {family} is not read (0 and 1 are: mono, stereo and up to 7.1).");
        }
    }

    private static AudioFormatException Corrupt(string inputName, string detail, long? at = null) => new(inputName, AudioInputProblem.CorruptHeader, detail) { ByteOffset = at };
}
