namespace MiniOmni.SK.Audio;

/// <summary>
/// The inside of a Matroska (Simple)Block: track number, timecode and flags, then one frame or a lace of up to 256
/// (Xiph, EBML or fixed-size lacing). Every size is checked against the block it claims to be in.
/// </summary>
internal static class MatroskaBlock
{
    /// <summary>The most frames a lace can hold (its count is one byte, plus one).</summary>
    public const int MaxLaceFrames = 256;

    /// <summary>Writes each frame's size into <paramref name="sizes"/>, returns the frame count and where the first frame starts.</summary>
    public static int ReadFrameSizes(ReadOnlySpan<byte> block, Span<int> sizes, out int firstFrameAt, string inputName, long offset)
    {
        TryReadVint(block, out _, out int trackBytes);
        int at = trackBytes + 3; // track number, 16-bit relative timecode, flags
        if (block.Length < at)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the WebM block at byte {offset} is {block.Length} bytes, too short for its header.") { ByteOffset = offset };
        }

        int lacing = (block[at - 1] >> 1) & 3;
        if (lacing == 0)
        {
            sizes[0] = block.Length - at;
            firstFrameAt = at;
            return 1;
        }

        if (block.Length <= at)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the laced WebM block at byte {offset} has no frame count.") { ByteOffset = offset };
        }

        int count = block[at++] + 1;
        firstFrameAt = ReadLaceSizes(block, at, lacing, sizes[..count], inputName, offset);
        return count;
    }

    /// <summary>Reads the sizes of a laced block's frames (the last one is what remains) and returns where the first frame starts.</summary>
    private static int ReadLaceSizes(ReadOnlySpan<byte> block, int at, int lacing, Span<int> sizes, string inputName, long offset)
    {
        int count = sizes.Length;
        long total = 0;
        switch (lacing)
        {
            case 1: // Xiph: each size as a run of 255s and a final byte below 255.
                for (int frame = 0; frame < count - 1; frame++)
                {
                    int size = 0;
                    byte value;
                    do
                    {
                        if (at >= block.Length)
                        {
                            throw LaceError(inputName, offset);
                        }

                        value = block[at++];
                        size += value;
                    }
                    while (value == 255);
                    sizes[frame] = size;
                    total += size;
                }

                break;
            case 3 when count > 1: // EBML: the first size as a vint, then signed differences.
                if (!TryReadVint(block[at..], out ulong first, out int used) || first > int.MaxValue)
                {
                    throw LaceError(inputName, offset);
                }

                at += used;
                long previous = (long)first;
                sizes[0] = (int)previous;
                total = previous;
                for (int frame = 1; frame < count - 1; frame++)
                {
                    if (!TryReadVint(block[at..], out ulong raw, out used))
                    {
                        throw LaceError(inputName, offset);
                    }

                    at += used;
                    long bias = (1L << ((7 * used) - 1)) - 1;
                    previous += (long)raw - bias;
                    if (previous < 0 || previous > block.Length)
                    {
                        throw LaceError(inputName, offset);
                    }

                    sizes[frame] = (int)previous;
                    total += previous;
                }

                break;
            case 3:
                break;
            default: // Fixed: equal frames.
                if ((block.Length - at) % count != 0)
                {
                    throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the fixed-size laced WebM block at byte {offset} does not divide into {count} equal frames.") { ByteOffset = offset };
                }

                sizes.Fill((block.Length - at) / count);
                return at;
        }

        long last = block.Length - at - total;
        if (last < 0)
        {
            throw LaceError(inputName, offset);
        }

        sizes[count - 1] = (int)last;
        return at;
    }

    private static AudioFormatException LaceError(string inputName, long offset) =>
        new(inputName, AudioInputProblem.CorruptHeader, $"the lace sizes of the WebM block at byte {offset} run past the block.") { ByteOffset = offset };

    /// <summary>An EBML variable-length integer: the count of leading zero bits gives its length (at most 8 bytes).</summary>
    public static bool TryReadVint(ReadOnlySpan<byte> bytes, out ulong value, out int length)
    {
        value = 0;
        length = 0;
        if (bytes.IsEmpty || bytes[0] == 0)
        {
            return false;
        }

        length = System.Numerics.BitOperations.LeadingZeroCount((uint)bytes[0]) - 23;
        if (bytes.Length < length)
        {
            return false;
        }

        value = bytes[0] & (0xFFu >> length);
        for (int i = 1; i < length; i++)
        {
            value = (value << 8) | bytes[i];
        }

        return true;
    }
}
