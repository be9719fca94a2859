namespace MiniOmni.SK.Audio;

/// <summary>
/// Finds where an MP3 stream's audio starts: past any ID3v2 tags, the first position from which several MPEG audio
/// frame headers follow each other exactly (each at the previous one's computed length, with the same version, layer and
/// sample rate). A lone sync word is common in random bytes; a run of consistent frames is not, so bytes that merely
/// resemble MP3 are refused instead of being decoded as noise.
/// </summary>
internal static class MpegFrameScanner
{
    /// <summary>Consecutive valid frames required (fewer only when the input ends cleanly after them).</summary>
    public const int RequiredFrames = 4;

    /// <summary>How far past the tags the first frame may start (junk some encoders and uploads leave in front).</summary>
    public const int MaxLeadingJunk = 64 * 1024;

    private const int MaxTags = 8;

    private static readonly int[,] BitratesKbps =
    {
        // MPEG-1 layer I, II, III; MPEG-2/2.5 layer I, II/III. Index 0 (free format) and 15 (invalid) are refused.
        { 0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0 },
        { 0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0 },
        { 0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0 },
        { 0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0 },
        { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0 },
    };

    private static readonly int[] Mpeg1SampleRates = [44100, 48000, 32000];

    /// <summary>The position of the first frame of a run of valid frames, or an <see cref="AudioFormatException"/> that says what was found instead.</summary>
    public static long FindAudioStart(Stream stream, long length, string inputName)
    {
        long start = stream.Position;
        long tagsEnd = SkipId3v2Tags(stream, start, length, inputName);
        long scanEnd = Math.Min(length, tagsEnd + MaxLeadingJunk + 4);
        int window = (int)Math.Min(scanEnd - tagsEnd + 16384, length - tagsEnd);

        // One read covers the scan window and the frames that follow its last candidate (a frame is at most 2881 bytes, so a run fits in 16 KiB).
        var bytes = new byte[window];
        stream.Position = start + tagsEnd;
        stream.ReadExactly(bytes);
        stream.Position = start;

        int framesSeen = 0;
        for (int candidate = 0; candidate + 4 <= bytes.Length && candidate <= MaxLeadingJunk; candidate++)
        {
            if (!TryParseHeader(bytes.AsSpan(candidate), out var first))
            {
                continue;
            }

            int run = CountRun(bytes, candidate, first, tagsEnd, length, out bool endedCleanly);
            framesSeen = Math.Max(framesSeen, run);
            if (run >= RequiredFrames || (endedCleanly && run >= 1))
            {
                return tagsEnd + candidate;
            }
        }

        throw new AudioFormatException(
            inputName,
            AudioInputProblem.CorruptHeader,
            framesSeen == 0
                ? $"no valid MPEG audio frame found in the first {Math.Min(window, MaxLeadingJunk)} bytes after byte {tagsEnd}."
                : $"no run of {RequiredFrames} consecutive valid MPEG audio frames found (at most {framesSeen}); the input is not MP3 or is damaged at its start.") { ByteOffset = tagsEnd };
    }

    private static int CountRun(byte[] bytes, int candidate, FrameHeader first, long tagsEnd, long length, out bool endedCleanly)
    {
        // Ending cleanly: the input (or an ID3v1 tag, the last 128 bytes) starts where the frame ends.
        endedCleanly = false;
        int run = 0;
        long at = candidate;
        var header = first;
        while (run < RequiredFrames)
        {
            run++;
            long next = at + header.Length;
            if (tagsEnd + next == length || (tagsEnd + next + 128 == length && next + 3 <= bytes.Length && bytes.AsSpan((int)next).StartsWith("TAG"u8)))
            {
                endedCleanly = true;
                return run;
            }

            if (next + 4 > bytes.Length || !TryParseHeader(bytes.AsSpan((int)next), out var following)
                || following.Version != first.Version || following.Layer != first.Layer || following.SampleRate != first.SampleRate)
            {
                return run;
            }

            at = next;
            header = following;
        }

        return run;
    }

    private static long SkipId3v2Tags(Stream stream, long start, long length, string inputName)
    {
        long position = 0;
        Span<byte> tag = stackalloc byte[10];
        for (int i = 0; i < MaxTags && position + 10 <= length; i++)
        {
            stream.Position = start + position;
            stream.ReadExactly(tag);
            if (!tag.StartsWith("ID3"u8))
            {
                break;
            }

            // The size is four 7-bit bytes ("syncsafe"); a set high bit means this is no ID3v2 header.
            if ((tag[6] | tag[7] | tag[8] | tag[9]) >= 0x80 || tag[3] == 0xFF || tag[4] == 0xFF)
            {
                throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the ID3v2 tag at byte {position} has an invalid version or size.") { ByteOffset = position };
            }

            long size = (tag[6] << 21) | (tag[7] << 14) | (tag[8] << 7) | tag[9];
            bool footer = (tag[5] & 0x10) != 0;
            long end = position + 10 + size + (footer ? 10 : 0);
            if (end > length)
            {
                throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.Truncated,
                    $"the ID3v2 tag at byte {position} declares {size} bytes but the input ends at {length}.") { ByteOffset = position };
            }

            position = end;
        }

        stream.Position = start;
        return position;
    }

    private static bool TryParseHeader(ReadOnlySpan<byte> bytes, out FrameHeader header)
    {
        header = default;
        if (bytes[0] != 0xFF || (bytes[1] & 0xE0) != 0xE0)
        {
            return false;
        }

        int version = (bytes[1] >> 3) & 3; // 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
        int layer = (bytes[1] >> 1) & 3;   // 1: III, 2: II, 3: I, 0: reserved
        int bitrateIndex = bytes[2] >> 4;
        int rateIndex = (bytes[2] >> 2) & 3;
        int padding = (bytes[2] >> 1) & 1;
        if (version == 1 || layer == 0 || bitrateIndex is 0 or 15 || rateIndex == 3 || (bytes[3] & 3) == 2)
        {
            return false;
        }

        bool mpeg1 = version == 3;
        int row = mpeg1 ? 3 - layer : layer == 3 ? 3 : 4;
        int bitrate = BitratesKbps[row, bitrateIndex] * 1000;
        int sampleRate = Mpeg1SampleRates[rateIndex] >> (mpeg1 ? 0 : version == 2 ? 1 : 2);
        int length = layer == 3
            ? ((12 * bitrate / sampleRate) + padding) * 4
            : ((layer == 1 && !mpeg1 ? 72 : 144) * bitrate / sampleRate) + padding;
        header = new FrameHeader(version, layer, sampleRate, length);
        return length >= 4;
    }

    private readonly record struct FrameHeader(int Version, int Layer, int SampleRate, int Length);
}
