using System.Buffers.Binary;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Reads the Opus stream of an Ogg file (RFC 3533 pages, RFC 7845 mapping), as Firefox's MediaRecorder and opusenc
/// write it. Concentus decodes packets but reads no container, so the page layer is here: every page's CRC is checked,
/// every size comes from the page's own lacing table (a page is at most 65,307 bytes), packets are bounded by
/// <see cref="OpusLimits.MaxPacketBytes"/>, the comment header is skipped without being buffered, and other logical
/// streams in the file are passed over.
/// </summary>
internal sealed class OggOpusReader : IOpusPacketSource
{
    private const int PageHeaderBytes = 27;
    private const byte ContinuedFlag = 0x01;
    private const byte FirstPageFlag = 0x02;
    private const byte LastPageFlag = 0x04;
    private const int MaxLeadingStreams = 32;

    private readonly Stream _stream;
    private readonly long _start;
    private readonly long _length;
    private readonly string _inputName;
    private readonly byte[] _page = new byte[PageHeaderBytes + 255 + (255 * 255)];
    private readonly Queue<OpusPacket> _ready = new();
    private readonly uint _serial;
    private long _position;
    private readonly byte[] _partial = new byte[OpusLimits.MaxPacketBytes];
    private int _partialLength = -1; // -1: no packet in progress
    private long _partialOffset;
    private int _packetsSeen; // completed packets after the identification header: the first is the comment header
    private bool _ended;

    public OggOpusReader(Stream stream, long length, string inputName)
    {
        _stream = stream;
        _start = stream.Position;
        _length = length;
        _inputName = inputName;

        // The first pages of a file are the first pages of each of its logical streams; the Opus one starts with OpusHead.
        var codecs = new List<string>();
        for (int streamIndex = 0; ; streamIndex++)
        {
            var page = ReadPage() ?? throw Corrupt($"the Ogg file ends before any Opus stream begins (streams seen: {Describe(codecs)}).", at: _position);
            if ((page.Flags & FirstPageFlag) == 0 || streamIndex == MaxLeadingStreams)
            {
                throw new AudioFormatException(
                    inputName,
                    codecs.Count == 0 ? AudioInputProblem.CorruptHeader : AudioInputProblem.UnsupportedFormat,
                    codecs.Count == 0
                        ? $"the first Ogg page (at byte 0) does not begin a stream."
                        : $"the Ogg file carries no Opus stream (found {Describe(codecs)}); only Opus is read from Ogg.") { ByteOffset = page.Offset };
            }

            ReadOnlySpan<byte> body = _page.AsSpan(page.BodyOffset, page.BodyLength);
            if (body.StartsWith("OpusHead"u8))
            {
                var lacing = _page.AsSpan(PageHeaderBytes, page.SegmentCount);
                if (lacing.IsEmpty || lacing[^1] == 255 || lacing[..^1].ContainsAnyExcept((byte)255))
                {
                    throw Corrupt($"the Opus header page (at byte {page.Offset}) must hold exactly the identification header (RFC 7845 section 3).", at: page.Offset);
                }

                Head = OpusHead.Parse(body, inputName, $"the Ogg Opus identification header (page at byte {page.Offset})", page.Offset);
                HeadOffset = page.Offset;
                _serial = page.Serial;
                break;
            }

            codecs.Add(NameCodec(body));
        }

        PreSkip = Head.PreSkip;
    }

    public OpusHead Head { get; }

    public int PreSkip { get; }

    public long HeadOffset { get; }

    public string ContainerName => "Ogg";

    public bool TryReadPacket(out OpusPacket packet)
    {
        while (_ready.Count == 0)
        {
            if (_ended)
            {
                packet = default;
                return false;
            }

            var page = ReadPage();
            if (page is null)
            {
                _ended = true;
                continue;
            }

            if (page.Value.Serial == _serial)
            {
                CollectPackets(page.Value);
            }
        }

        packet = _ready.Dequeue();
        return true;
    }

    private void CollectPackets(PageInfo page)
    {
        if ((page.Flags & FirstPageFlag) != 0)
        {
            throw Corrupt($"the Ogg page at byte {page.Offset} starts the Opus stream a second time.", at: page.Offset);
        }

        bool last = (page.Flags & LastPageFlag) != 0;
        int segmentTable = PageHeaderBytes;
        int bodyAt = page.BodyOffset;
        int segment = 0;
        if ((page.Flags & ContinuedFlag) == 0 && _partialLength >= 0)
        {
            // The page that carried the rest of this packet is missing: the fragment cannot be decoded.
            _partialLength = -1;
        }
        else if ((page.Flags & ContinuedFlag) != 0 && _partialLength < 0)
        {
            // The start of this packet was on a page that is missing: skip its tail.
            while (segment < page.SegmentCount)
            {
                int lacing = _page[segmentTable + segment++];
                bodyAt += lacing;
                if (lacing < 255)
                {
                    break;
                }
            }
        }

        var completed = new List<OpusPacket>();
        for (; segment < page.SegmentCount; segment++)
        {
            int lacing = _page[segmentTable + segment];
            if (_partialLength < 0)
            {
                _partialLength = 0;
                _partialOffset = page.Offset;
            }

            Append(_page.AsSpan(bodyAt, lacing), page.Offset);
            bodyAt += lacing;
            if (lacing < 255)
            {
                if (_packetsSeen++ == 0)
                {
                    // The second packet of the stream is the comment header (OpusTags); only its first bytes were kept.
                    if (!_partial.AsSpan(0, Math.Min(_partialLength, 8)).SequenceEqual("OpusTags"u8))
                    {
                        throw Corrupt($"the second packet of the Ogg Opus stream (page at byte {_partialOffset}) is not the 'OpusTags' comment header.", at: _partialOffset);
                    }
                }
                else
                {
                    completed.Add(new OpusPacket(_partial.AsSpan(0, _partialLength).ToArray(), -1, 0, _partialOffset));
                }

                _partialLength = -1;
            }
        }

        if (last && completed.Count > 0)
        {
            // The last page's granule position is where the stream ends: the decoder trims the final packet to it.
            completed[^1] = completed[^1] with { EndGranule = page.Granule };
        }

        foreach (var packet in completed)
        {
            _ready.Enqueue(packet);
        }

        if (last)
        {
            _ended = true;
        }
    }

    private void Append(ReadOnlySpan<byte> fragment, long pageOffset)
    {
        if (_packetsSeen == 0)
        {
            // The comment header may be large (cover art) and is not needed: keep its magic only.
            int keep = Math.Max(0, Math.Min(fragment.Length, 8 - _partialLength));
            fragment[..keep].CopyTo(_partial.AsSpan(_partialLength));
            _partialLength += keep;
            return;
        }

        if (_partialLength + fragment.Length > OpusLimits.MaxPacketBytes)
        {
            throw new AudioFormatException(
                _inputName,
                AudioInputProblem.InputTooLarge,
                $"an Ogg Opus packet (continued on the page at byte {pageOffset}) is longer than the {OpusLimits.MaxPacketBytes} bytes an Opus packet can take.") { ByteOffset = pageOffset };
        }

        fragment.CopyTo(_partial.AsSpan(_partialLength));
        _partialLength += fragment.Length;
    }

    /// <summary>Reads and checks the next page into <see cref="_page"/>; null at the end of the input.</summary>
    private PageInfo? ReadPage()
    {
        long remaining = _length - _position;
        if (remaining == 0)
        {
            return null;
        }

        if (remaining < PageHeaderBytes)
        {
            throw Truncated($"the Ogg data ends inside a page header at byte {_position}.", at: _position);
        }

        _stream.Position = _start + _position;
        _stream.ReadExactly(_page.AsSpan(0, PageHeaderBytes));
        if (!_page.AsSpan(0, 4).SequenceEqual("OggS"u8))
        {
            throw Corrupt($"no Ogg page where one should start, at byte {_position} (found {Convert.ToHexString(_page.AsSpan(0, 4))}).", at: _position);
        }

        if (_page[4] != 0)
        {
            throw Corrupt($"the Ogg page at byte {_position} has stream structure version {_page[4]}; only 0 exists.", at: _position);
        }

        int segments = _page[26];
        if (remaining < PageHeaderBytes + segments)
        {
            throw Truncated($"the Ogg data ends inside the lacing table of the page at byte {_position}.", at: _position);
        }

        _stream.ReadExactly(_page.AsSpan(PageHeaderBytes, segments));
        int bodyLength = 0;
        foreach (byte lacing in _page.AsSpan(PageHeaderBytes, segments))
        {
            bodyLength += lacing;
        }

        int pageLength = PageHeaderBytes + segments + bodyLength;
        if (remaining < pageLength)
        {
            throw Truncated($"the Ogg page at byte {_position} declares {pageLength} bytes but only {remaining} remain.", at: _position);
        }

        _stream.ReadExactly(_page.AsSpan(PageHeaderBytes + segments, bodyLength));
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(_page.AsSpan(22));
        BinaryPrimitives.WriteUInt32LittleEndian(_page.AsSpan(22), 0);
        uint computed = OggCrc.Compute(_page.AsSpan(0, pageLength));
        if (stored != computed)
        {
            throw new AudioFormatException(
                _inputName,
                AudioInputProblem.CorruptData,
                $"the Ogg page at byte {_position} fails its checksum (stored {stored:X8}, computed {computed:X8}).") { ByteOffset = _position };
        }

        var page = new PageInfo(
            _position,
            _page[5],
            BinaryPrimitives.ReadInt64LittleEndian(_page.AsSpan(6)),
            BinaryPrimitives.ReadUInt32LittleEndian(_page.AsSpan(14)),
            segments,
            PageHeaderBytes + segments,
            bodyLength);
        _position += pageLength;
        return page;
    }

    private static string NameCodec(ReadOnlySpan<byte> firstPacket) => firstPacket switch
    {
        _ when firstPacket.StartsWith("\u0001vorbis"u8) => "Vorbis",
        _ when firstPacket.StartsWith("\u007FFLAC"u8) => "FLAC",
        _ when firstPacket.StartsWith("Speex   "u8) => "Speex",
        _ when firstPacket.StartsWith("\u0080theora"u8) => "Theora video",
        _ => "an unknown codec",
    };

    private static string Describe(List<string> codecs) => codecs.Count == 0 ? "none" : string.Join(", ", codecs);

    private AudioFormatException Corrupt(string detail, long? at = null) => new(_inputName, AudioInputProblem.CorruptHeader, detail) { ByteOffset = at };

    private AudioFormatException Truncated(string detail, long? at = null) => new(_inputName, AudioInputProblem.Truncated, detail) { ByteOffset = at };

    private readonly record struct PageInfo(long Offset, byte Flags, long Granule, uint Serial, int SegmentCount, int BodyOffset, int BodyLength);
}
