using System.Buffers.Binary;
using System.Text;
using NAudio.Wave;

namespace MiniOmni.SK.Audio;

/// <summary>Where a WAV file's samples are and how they are coded, after every field was checked.</summary>
/// <param name="Format">The sample format, in NAudio's standard (non-extensible) form.</param>
/// <param name="DataOffset">Position of the first sample byte in the input.</param>
/// <param name="DataLength">Bytes of whole sample frames in the data chunk.</param>
internal sealed record WavLayout(WaveFormat Format, long DataOffset, long DataLength)
{
    /// <summary>Sample frames (one sample per channel) in the data chunk.</summary>
    public long FrameCount => DataLength / Format.BlockAlign;
}

/// <summary>
/// Walks a RIFF/RF64 WAVE file's chunks and validates the format before any sample is read. NAudio's own reader takes
/// the last of several <c>fmt </c> chunks, quietly shortens a data chunk that runs past the end and lets a channel count
/// of 0 reach a division; this walk names the chunk and field that is wrong instead.
/// </summary>
internal static class WavChunkReader
{
    /// <summary>Sample rates accepted: from telephone-band oddities to the highest rate audio interfaces record at.</summary>
    public const int MinSampleRate = 1000;

    /// <summary>The highest sample rate accepted.</summary>
    public const int MaxSampleRate = 384_000;

    /// <summary>The most channels accepted (WAVE_FORMAT_EXTENSIBLE names 18 speaker positions; studio files go a little beyond).</summary>
    public const int MaxChannels = 64;

    private const int MaxChunks = 4096;
    private const int MaxFormatChunkBytes = 1024;
    private const ushort ExtensibleTag = 0xFFFE;

    // KSDATAFORMAT_SUBTYPE_* GUIDs share these last 12 bytes; the first 4 hold the format tag.
    private static ReadOnlySpan<byte> SubtypeGuidTail => [0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];

    /// <summary>Reads the chunk list from the start of <paramref name="stream"/> (seekable, <paramref name="length"/> bytes from its position).</summary>
    public static WavLayout Read(Stream stream, long length, string inputName)
    {
        long start = stream.Position;
        Span<byte> header = stackalloc byte[12];
        if (stream.ReadAtLeast(header, 12, throwOnEndOfStream: false) < 12)
        {
            throw Corrupt(inputName, $"only {length} bytes, too short for a RIFF header.", at: 0);
        }

        bool rf64 = header.StartsWith("RF64"u8);
        uint riffSize = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        long? ds64DataSize = null;
        long riffEnd;
        long position = 12;
        if (rf64)
        {
            (long riffSize64, long dataSize64) = ReadDs64(stream, start, length, inputName);
            ds64DataSize = dataSize64;
            riffEnd = riffSize64 > length - 8 ? length : riffSize64 + 8;
            position = 12 + 8 + 28;
        }
        else
        {
            // 0 and 0xFFFFFFFF are what streaming writers leave when they cannot go back to fill in the size.
            bool placeholder = riffSize is 0 or uint.MaxValue;
            if (!placeholder && riffSize + 8L > length)
            {
                throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.Truncated,
                    $"the WAV data is truncated: the header declares {riffSize + 8L} bytes but the input has {length}.") { ByteOffset = 4 };
            }

            riffEnd = placeholder ? length : riffSize + 8L;
        }

        bool sizesArePlaceholders = !rf64 && riffSize is 0 or uint.MaxValue;
        byte[]? format = null;
        long formatAt = -1;
        long dataOffset = -1;
        long dataLength = -1;
        Span<byte> chunkHeader = stackalloc byte[8];
        for (int chunk = 0; position + 8 <= riffEnd && (format is null || dataOffset < 0); chunk++)
        {
            if (chunk == MaxChunks)
            {
                throw Corrupt(inputName, $"more than {MaxChunks} chunks before the 'fmt ' and 'data' chunks (the next at byte {position}).", at: position);
            }

            stream.Position = start + position;
            stream.ReadExactly(chunkHeader);
            string id = ChunkName(chunkHeader[..4]);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(chunkHeader[4..]);
            long bodyAt = position + 8;
            long available = length - bodyAt;
            if (id == "data")
            {
                long declared = rf64 && size == uint.MaxValue ? ds64DataSize!.Value : size;
                if (declared == 0 && sizesArePlaceholders)
                {
                    declared = available;
                }

                if (declared > available)
                {
                    // A writer that could not seek back leaves a huge placeholder; anything else is a cut-off upload.
                    if (!sizesArePlaceholders && !rf64 && size < 0xFFFF0000)
                    {
                        throw new AudioFormatException(
                            inputName,
                            AudioInputProblem.Truncated,
                            $"the WAV data is truncated: the 'data' chunk at byte {position} declares {declared} bytes but only {available} follow.") { ByteOffset = position };
                    }

                    declared = available;
                }

                if (dataOffset < 0)
                {
                    dataOffset = bodyAt;
                    dataLength = declared;
                }

                position = bodyAt + declared + (declared & 1);
                continue;
            }

            if (size > available)
            {
                if (format is not null && dataOffset >= 0)
                {
                    break;
                }

                throw Corrupt(inputName, $"the WAV header is cut short: chunk '{id}' at byte {position} declares {size} bytes but only {available} follow.", at: position);
            }

            if (id == "fmt ")
            {
                if (size < 16 || size > MaxFormatChunkBytes)
                {
                    throw Corrupt(inputName, $"the 'fmt ' chunk at byte {position} is {size} bytes; a WAVE format is 16 to {MaxFormatChunkBytes} bytes.", at: position);
                }

                var body = new byte[size];
                stream.ReadExactly(body);
                if (format is not null && !SameFormat(format, body))
                {
                    throw Corrupt(inputName, $"two 'fmt ' chunks disagree (at bytes {formatAt} and {position}): {DescribeFormat(format)} against {DescribeFormat(body)}.", at: position);
                }

                format ??= body;
                formatAt = formatAt < 0 ? position : formatAt;
            }

            position = bodyAt + size + (size & 1);
        }

        if (format is null)
        {
            throw Corrupt(inputName, $"the WAV file has no 'fmt ' chunk (none in its chunks up to byte {position}).", at: position);
        }

        if (dataOffset < 0)
        {
            throw Corrupt(inputName, $"the WAV file has no 'data' chunk (none in its chunks up to byte {position}).", at: position);
        }

        var waveFormat = ValidateFormat(format, formatAt, inputName);
        long frames = dataLength / waveFormat.BlockAlign;
        stream.Position = start;
        return new WavLayout(waveFormat, start + dataOffset, frames * waveFormat.BlockAlign);
    }

    private static (long RiffSize, long DataSize) ReadDs64(Stream stream, long start, long length, string inputName)
    {
        Span<byte> ds64 = stackalloc byte[8 + 28];
        if (length < 12 + ds64.Length || stream.ReadAtLeast(ds64, ds64.Length, throwOnEndOfStream: false) < ds64.Length || !ds64.StartsWith("ds64"u8))
        {
            throw Corrupt(inputName, "an RF64 file must begin with a complete 'ds64' chunk (at byte 12).", at: 12);
        }

        uint chunkSize = BinaryPrimitives.ReadUInt32LittleEndian(ds64[4..]);
        long riffSize = BinaryPrimitives.ReadInt64LittleEndian(ds64[8..]);
        long dataSize = BinaryPrimitives.ReadInt64LittleEndian(ds64[16..]);
        if (chunkSize != 28 || riffSize < 0 || dataSize < 0)
        {
            throw Corrupt(inputName, $"the 'ds64' chunk is invalid (size {chunkSize}, RIFF size {riffSize}, data size {dataSize}); only a 28-byte chunk without a table is read.", at: 12);
        }

        stream.Position = start + 12 + ds64.Length;
        return (riffSize, dataSize);
    }

    private static WaveFormat ValidateFormat(byte[] chunk, long at, string inputName)
    {
        ushort tag = BinaryPrimitives.ReadUInt16LittleEndian(chunk);
        int channels = BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(2));
        uint sampleRate = BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(4));
        int blockAlign = BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(12));
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(14));
        string where = $"the 'fmt ' chunk at byte {at}";
        if (tag == ExtensibleTag)
        {
            // cbSize (2), valid bits (2), channel mask (4), sub-format GUID (16).
            if (chunk.Length < 40 || BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(16)) < 22)
            {
                throw Corrupt(inputName, $"{where} says WAVE_FORMAT_EXTENSIBLE but is {chunk.Length} bytes; the extension needs 40.", at: at);
            }

            int validBits = BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(18));
            if (validBits > bits)
            {
                throw Corrupt(inputName, $"{where} declares {validBits} valid bits in {bits}-bit samples.", at: at);
            }

            if (!chunk.AsSpan(28, 12).SequenceEqual(SubtypeGuidTail))
            {
                throw Unsupported(inputName, $"unsupported WAV sub-format {new Guid(chunk.AsSpan(24, 16))}; only PCM 8/16/24/32-bit and IEEE float are read.", at: at);
            }

            tag = (ushort)BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(24));
        }

        var encoding = (WaveFormatEncoding)tag;
        bool readable = encoding switch
        {
            WaveFormatEncoding.Pcm => bits is 8 or 16 or 24 or 32,
            WaveFormatEncoding.IeeeFloat => bits is 32 or 64,
            _ => false,
        };
        if (!readable)
        {
            throw Unsupported(inputName, $"unsupported WAV encoding {encoding} ({bits}-bit); only PCM 8/16/24/32-bit and IEEE float 32/64-bit are read.", at: at);
        }

        if (channels is < 1 or > MaxChannels)
        {
            throw Corrupt(inputName, $"{where} declares {channels} channels; 1 to {MaxChannels} are read.", at: at);
        }

        if (sampleRate is < MinSampleRate or > MaxSampleRate)
        {
            throw Corrupt(inputName, $"{where} declares a sample rate of {sampleRate} Hz; {MinSampleRate} to {MaxSampleRate} Hz are read.", at: at);
        }

        int frameBytes = channels * (bits / 8);
        if (blockAlign != frameBytes)
        {
            throw Corrupt(inputName, $"{where} declares a block align of {blockAlign} bytes, but {channels} channels of {bits}-bit samples take {frameBytes}.", at: at);
        }

        return WaveFormat.CreateCustomFormat(encoding, (int)sampleRate, channels, (int)sampleRate * frameBytes, frameBytes, bits);
    }

    private static bool SameFormat(byte[] first, byte[] second) =>
        first.AsSpan(0, 16).SequenceEqual(second.AsSpan(0, 16))
        && (BinaryPrimitives.ReadUInt16LittleEndian(first) != ExtensibleTag || first.AsSpan(16).SequenceEqual(second.AsSpan(16)));

    private static string DescribeFormat(byte[] chunk) =>
        $"tag 0x{BinaryPrimitives.ReadUInt16LittleEndian(chunk):X4}, {BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(2))} channels, " +
        $"{BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(4))} Hz, {BinaryPrimitives.ReadUInt16LittleEndian(chunk.AsSpan(14))} bits";

    private static string ChunkName(ReadOnlySpan<byte> id)
    {
        var name = new StringBuilder(4);
        foreach (byte b in id)
        {
            name.Append(b is >= 0x20 and < 0x7F ? (char)b : '?');
        }

        return name.ToString();
    }

    private static AudioFormatException Corrupt(string inputName, string detail, long? at = null) => new(inputName, AudioInputProblem.CorruptHeader, detail) { ByteOffset = at };

    private static AudioFormatException Unsupported(string inputName, string detail, long? at = null) => new(inputName, AudioInputProblem.UnsupportedFormat, detail) { ByteOffset = at };
}
