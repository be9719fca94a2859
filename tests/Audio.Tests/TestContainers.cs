using System.Buffers.Binary;

namespace MiniOmni.SK.Audio.Tests;

/// <summary>Builds and walks Ogg and WebM files in memory, for tests that forge their structure.</summary>
internal static class TestContainers
{
    /// <summary>A 20 ms CELT fullband mono frame of silence: the smallest valid Opus packet.</summary>
    public static byte[] SilentOpusPacket => [0xF8, 0xFF, 0xFE];

    /// <summary>An OpusHead for mapping family 0.</summary>
    public static byte[] OpusHead(int channels = 1, int preSkip = 312, short gain = 0)
    {
        var head = new byte[19];
        "OpusHead"u8.CopyTo(head);
        head[8] = 1;
        head[9] = (byte)channels;
        BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(10), (ushort)preSkip);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(12), 48000);
        BinaryPrimitives.WriteInt16LittleEndian(head.AsSpan(16), gain);
        return head;
    }

    /// <summary>An Ogg Opus file: head and tags pages, then <paramref name="packets"/> a few to a page, the last page marked end of stream.</summary>
    public static byte[] OggOpus(IReadOnlyList<byte[]> packets, byte[]? head = null, long? finalGranule = null, int packetsPerPage = 10)
    {
        using var file = new MemoryStream();
        uint sequence = 0;
        WriteOggPage(file, [head ?? OpusHead()], 0x02, 0, ref sequence);
        WriteOggPage(file, [[.. "OpusTags"u8, 0, 0, 0, 0, 0, 0, 0, 0]], 0, 0, ref sequence);
        long granule = 0;
        for (int i = 0; i < packets.Count; i += packetsPerPage)
        {
            var page = packets.Skip(i).Take(packetsPerPage).ToList();
            granule += page.Count * 960;
            bool last = i + packetsPerPage >= packets.Count;
            WriteOggPage(file, page, last ? (byte)0x04 : (byte)0, last && finalGranule is { } end ? end : granule, ref sequence);
        }

        return file.ToArray();
    }

    /// <summary>Writes one page holding whole packets.</summary>
    public static void WriteOggPage(Stream file, IReadOnlyList<byte[]> packets, byte flags, long granule, ref uint sequence, uint serial = 0x1234)
    {
        var lacing = new List<byte>();
        foreach (var packet in packets)
        {
            int size = packet.Length;
            while (size >= 255)
            {
                lacing.Add(255);
                size -= 255;
            }

            lacing.Add((byte)size);
        }

        WriteOggPageRaw(file, [.. lacing], [.. packets.SelectMany(p => p)], flags, granule, ref sequence, serial);
    }

    /// <summary>Writes one page with the given lacing table and body, whatever they say.</summary>
    public static void WriteOggPageRaw(Stream file, byte[] lacing, byte[] body, byte flags, long granule, ref uint sequence, uint serial = 0x1234)
    {
        var page = new byte[27 + lacing.Length + body.Length];
        "OggS"u8.CopyTo(page);
        page[5] = flags;
        BinaryPrimitives.WriteInt64LittleEndian(page.AsSpan(6), granule);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(14), serial);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(18), sequence++);
        page[26] = (byte)lacing.Length;
        lacing.CopyTo(page, 27);
        body.CopyTo(page, 27 + lacing.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(22), OggCrc(page));
        file.Write(page);
    }

    /// <summary>Offsets of the Ogg pages of a file (walking the headers as written, stopping at the first that does not parse).</summary>
    public static List<int> OggPageOffsets(byte[] file)
    {
        var offsets = new List<int>();
        int at = 0;
        while (at + 27 <= file.Length && file.AsSpan(at).StartsWith("OggS"u8))
        {
            offsets.Add(at);
            int segments = file[at + 26];
            if (at + 27 + segments > file.Length)
            {
                break;
            }

            at += 27 + segments + file.AsSpan(at + 27, segments).ToArray().Sum(b => b);
        }

        return offsets;
    }

    /// <summary>Recomputes the checksum of every page that still parses, so a mutation reaches the code past the CRC check.</summary>
    public static void FixOggCrcs(byte[] file)
    {
        foreach (int at in OggPageOffsets(file))
        {
            int segments = file[at + 26];
            if (at + 27 + segments > file.Length)
            {
                return;
            }

            int length = 27 + segments + file.AsSpan(at + 27, segments).ToArray().Sum(b => b);
            if (at + length > file.Length)
            {
                return;
            }

            var page = file.AsSpan(at, length);
            BinaryPrimitives.WriteUInt32LittleEndian(page[22..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(page[22..], OggCrc(page));
        }
    }

    public static uint OggCrc(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0;
        foreach (byte b in bytes)
        {
            crc ^= (uint)b << 24;
            for (int bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x80000000) != 0 ? (crc << 1) ^ 0x04C11DB7 : crc << 1;
            }
        }

        return crc;
    }

    /// <summary>An EBML element: its ID bytes, its size as an 8-byte vint (or the unknown size), its payload.</summary>
    public static byte[] Element(ulong id, byte[] payload, bool unknownSize = false)
    {
        var idBytes = new List<byte>();
        for (ulong v = id; v > 0; v >>= 8)
        {
            idBytes.Insert(0, (byte)v);
        }

        var size = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(size, unknownSize ? 0x00FFFFFFFFFFFFFF : (ulong)payload.Length);
        size[0] = 0x01;
        return [.. idBytes, .. size, .. payload];
    }

    public static byte[] UInt(ulong id, ulong value) => Element(id, BitConverter.GetBytes(value).Reverse().ToArray());

    public static byte[] Text(ulong id, string value) => Element(id, System.Text.Encoding.ASCII.GetBytes(value));

    /// <summary>A SimpleBlock of track 1 holding one frame, or several with the given lacing (1 Xiph, 2 fixed, 3 EBML).</summary>
    public static byte[] SimpleBlock(IReadOnlyList<byte[]> frames, int lacing = 0, short timecode = 0)
    {
        var block = new List<byte> { 0x81, (byte)(timecode >> 8), (byte)timecode, (byte)(0x80 | (lacing << 1)) };
        if (lacing != 0)
        {
            block.Add((byte)(frames.Count - 1));
            if (lacing == 1)
            {
                foreach (var frame in frames.Take(frames.Count - 1))
                {
                    int size = frame.Length;
                    for (; size >= 255; size -= 255)
                    {
                        block.Add(255);
                    }

                    block.Add((byte)size);
                }
            }
            else if (lacing == 3)
            {
                // The first size as a 2-byte vint, the others as 2-byte signed differences (bias 8191).
                block.Add((byte)(0x40 | (frames[0].Length >> 8)));
                block.Add((byte)frames[0].Length);
                for (int i = 1; i < frames.Count - 1; i++)
                {
                    int delta = frames[i].Length - frames[i - 1].Length + 8191;
                    block.Add((byte)(0x40 | (delta >> 8)));
                    block.Add((byte)delta);
                }
            }
        }

        foreach (var frame in frames)
        {
            block.AddRange(frame);
        }

        return Element(0xA3, [.. block]);
    }

    /// <summary>A BlockGroup of track 1 holding one frame and, when given, a DiscardPadding.</summary>
    public static byte[] BlockGroup(byte[] frame, long discardPaddingNs = 0) => Element(0xA0,
    [
        .. Element(0xA1, [0x81, 0, 0, 0, .. frame]),
        .. discardPaddingNs != 0 ? Element(0x75A2, BitConverter.GetBytes(discardPaddingNs).Reverse().ToArray()) : [],
    ]);

    /// <summary>The audio packets of an Ogg Opus file (after the identification and comment headers), reassembled from its pages.</summary>
    public static List<byte[]> OggPackets(byte[] file)
    {
        var packets = new List<byte[]>();
        var current = new List<byte>();
        foreach (int at in OggPageOffsets(file))
        {
            int segments = file[at + 26];
            int body = at + 27 + segments;
            for (int i = 0; i < segments; i++)
            {
                int lacing = file[at + 27 + i];
                current.AddRange(file.AsSpan(body, lacing).ToArray());
                body += lacing;
                if (lacing < 255)
                {
                    packets.Add([.. current]);
                    current.Clear();
                }
            }
        }

        return packets.Skip(2).ToList();
    }

    /// <summary>A WebM file shaped as Chrome's MediaRecorder writes it: unknown-size Segment and Clusters, one Opus track.</summary>
    public static byte[] Webm(IEnumerable<byte[]> clusterPayloads, byte[]? codecPrivate = null, string codec = "A_OPUS", bool unknownSizes = true, ulong? codecDelayNs = null)
    {
        byte[] header = Element(0x1A45DFA3, [.. UInt(0x4286, 1), .. Text(0x4282, "webm"), .. UInt(0x4287, 4), .. UInt(0x4285, 2)]);
        byte[] audio = Element(0xE1, [.. Element(0xB5, BitConverter.GetBytes(48000.0).Reverse().ToArray()), .. UInt(0x9F, 1)]);
        byte[] entry = Element(0xAE,
        [
            .. UInt(0xD7, 1), .. UInt(0x83, 2), .. Text(0x86, codec), .. Element(0x63A2, codecPrivate ?? OpusHead(preSkip: 0)),
            .. codecDelayNs is { } delay ? UInt(0x56AA, delay) : [],
            .. audio,
        ]);
        byte[] tracks = Element(0x1654AE6B, entry);
        var segment = new List<byte>(tracks);
        foreach (var cluster in clusterPayloads)
        {
            segment.AddRange(Element(0x1F43B675, [.. UInt(0xE7, 0), .. cluster], unknownSizes));
        }

        return [.. header, .. Element(0x18538067, [.. segment], unknownSizes)];
    }

    /// <summary>Offsets of every EBML element header in a file (descending into the master elements a WebM audio file has).</summary>
    public static List<(int Offset, int SizeOffset, int SizeLength)> EbmlElements(byte[] file)
    {
        var masters = new HashSet<ulong> { 0x1A45DFA3, 0x18538067, 0x1654AE6B, 0xAE, 0xE1, 0x1F43B675, 0xA0, 0x1549A966 };
        var found = new List<(int, int, int)>();
        Walk(0, file.Length);
        return found;

        void Walk(int from, int to)
        {
            int at = from;
            while (at < to && found.Count < 10000)
            {
                if (!TryVint(file, at, out int idLength, out _, keepMarker: true) || at + idLength >= to)
                {
                    return;
                }

                ulong id = 0;
                for (int i = 0; i < idLength; i++)
                {
                    id = (id << 8) | file[at + i];
                }

                int sizeAt = at + idLength;
                if (!TryVint(file, sizeAt, out int sizeLength, out ulong size, keepMarker: false))
                {
                    return;
                }

                found.Add((at, sizeAt, sizeLength));
                int body = sizeAt + sizeLength;
                bool unknown = size == (1UL << (7 * sizeLength)) - 1;
                int end = unknown || size > (ulong)(to - body) ? to : body + (int)size;
                if (masters.Contains(id))
                {
                    Walk(body, end);
                }

                at = unknown ? to : end;
            }
        }
    }

    private static bool TryVint(byte[] bytes, int at, out int length, out ulong value, bool keepMarker)
    {
        length = 0;
        value = 0;
        if (at >= bytes.Length || bytes[at] == 0)
        {
            return false;
        }

        length = System.Numerics.BitOperations.LeadingZeroCount((uint)bytes[at]) - 23;
        if (at + length > bytes.Length)
        {
            return false;
        }

        value = keepMarker ? bytes[at] : bytes[at] & (0xFFu >> length);
        for (int i = 1; i < length; i++)
        {
            value = (value << 8) | bytes[at + i];
        }

        return true;
    }
}
