using System.Buffers.Binary;
using NEbml.Core;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Reads the Opus track of a WebM (Matroska) file with NEbml, as Chrome's MediaRecorder writes it: a Segment and
/// Clusters of unknown size (a live recording cannot go back to write sizes), SimpleBlocks, or BlockGroups with
/// DiscardPadding, and any of Matroska's three lacings. Every size comes from the file and is checked against what is
/// left of it, the block and frame sizes against Opus' own limits, and the clusters are counted.
/// </summary>
internal sealed class WebmOpusReader : IOpusPacketSource
{
    /// <summary>The largest block accepted: a few laced Opus packets are a few KB; 1 MiB leaves room for any real muxer.</summary>
    public const int MaxBlockBytes = 1024 * 1024;

    /// <summary>The most clusters read: browsers start one every few seconds, ffmpeg every second or so.</summary>
    public const int MaxClusters = 16384;

    private const ulong EbmlHeaderId = 0x1A45DFA3;
    private const ulong DocTypeId = 0x4282;
    private const ulong SegmentId = 0x18538067;
    private const ulong TracksId = 0x1654AE6B;
    private const ulong TrackEntryId = 0xAE;
    private const ulong TrackNumberId = 0xD7;
    private const ulong TrackTypeId = 0x83;
    private const ulong CodecIdId = 0x86;
    private const ulong CodecPrivateId = 0x63A2;
    private const ulong CodecDelayId = 0x56AA;
    private const ulong AudioId = 0xE1;
    private const ulong ChannelsId = 0x9F;
    private const ulong ClusterId = 0x1F43B675;
    private const ulong SimpleBlockId = 0xA3;
    private const ulong BlockGroupId = 0xA0;
    private const ulong BlockId = 0xA1;
    private const ulong DiscardPaddingId = 0x75A2;
    private const int AudioTrackType = 2;
    private const int MaxTrackEntries = 128;
    private const int PrefixBytes = 9; // Void's ID and an 8-byte size

    private readonly EbmlReader _reader;
    private readonly StreamSlice _input;
    private readonly string _inputName;
    private readonly ulong _trackNumber;
    private readonly Queue<OpusPacket> _ready = new();
    private byte[] _block = new byte[4096]; // grows with the blocks read, up to MaxBlockBytes
    private int _openClusters;
    private int _clusters;
    private bool _ended;

    public WebmOpusReader(Stream stream, long length, string inputName)
    {
        _inputName = inputName;

        // NEbml refuses an unknown-size element at its root, which is exactly how a live recording's Segment is written.
        // The reader is given the file as the one child of a synthetic Void element of the file's exact length, so the
        // Segment is no longer at its root, and every size in the file is still bounded by the file's real length.
        var prefix = new byte[PrefixBytes];
        prefix[0] = 0xEC;
        BinaryPrimitives.WriteUInt64BigEndian(prefix.AsSpan(1), (ulong)length);
        prefix[1] |= 0x01; // the 8-byte vint's length marker; inputs are far below 2^56 bytes
        _input = new StreamSlice(stream, stream.Position, length, prefix);
        _reader = new EbmlReader(_input, PrefixBytes + length);

        var track = Guard(() =>
        {
            _reader.ReadNext();
            _reader.EnterContainer();
            ReadEbmlHeader();
            EnterSegment();
            return ReadTracks();
        });
        _trackNumber = track.Number;
        HeadOffset = track.HeadOffset;
        Head = track.Head;
        PreSkip = track.PreSkip;
    }

    public OpusHead Head { get; }

    public int PreSkip { get; }

    public long HeadOffset { get; }

    public string ContainerName => "WebM";

    public bool TryReadPacket(out OpusPacket packet)
    {
        while (_ready.Count == 0 && !_ended)
        {
            Guard(ReadUntilNextBlock);
        }

        return _ready.TryDequeue(out packet);
    }

    private void ReadEbmlHeader()
    {
        if (!_reader.ReadNext() || _reader.ElementId.EncodedValue != EbmlHeaderId)
        {
            throw Corrupt("the input does not begin with an EBML header.", at: 0);
        }

        _reader.EnterContainer();
        string? docType = null;
        while (_reader.ReadNext())
        {
            if (_reader.ElementId.EncodedValue == DocTypeId)
            {
                docType = ReadShortString("DocType");
            }
        }

        _reader.LeaveContainer();
        if (docType is not ("webm" or "matroska"))
        {
            throw new AudioFormatException(_inputName, AudioInputProblem.UnsupportedFormat, $"the EBML document type is '{docType ?? "(none)"}'; only WebM and Matroska are read.");
        }
    }

    private void EnterSegment()
    {
        while (_reader.ReadNext())
        {
            if (_reader.ElementId.EncodedValue == SegmentId)
            {
                _reader.EnterContainer();
                return;
            }
        }

        throw Corrupt($"the WebM file has no Segment (none up to byte {EndOfRead}).", at: EndOfRead);
    }

    private (ulong Number, OpusHead Head, int PreSkip, long HeadOffset) ReadTracks()
    {
        while (_reader.ReadNext())
        {
            ulong id = _reader.ElementId.EncodedValue;
            if (id == ClusterId)
            {
                throw Corrupt($"a Cluster (at byte {ElementOffset}) comes before the Tracks that describe it.", at: ElementOffset);
            }

            if (id != TracksId)
            {
                continue;
            }

            _reader.EnterContainer();
            var codecs = new List<string>();
            (ulong Number, OpusHead Head, int PreSkip, long HeadOffset)? opus = null;
            for (int entries = 0; _reader.ReadNext();)
            {
                if (_reader.ElementId.EncodedValue != TrackEntryId)
                {
                    continue;
                }

                if (++entries > MaxTrackEntries)
                {
                    throw Corrupt($"more than {MaxTrackEntries} tracks (the next at byte {ElementOffset}).", at: ElementOffset);
                }

                var entry = ReadTrackEntry();
                if (entry.Type == AudioTrackType)
                {
                    codecs.Add(entry.Codec);
                }

                if (opus is null && entry.Type == AudioTrackType && entry.Codec == "A_OPUS")
                {
                    opus = (entry.Number, CreateHead(entry), CreatePreSkip(entry), entry.CodecPrivate is null ? entry.Offset : entry.CodecPrivateOffset);
                }
            }

            _reader.LeaveContainer();
            return opus ?? throw new AudioFormatException(
                _inputName,
                AudioInputProblem.UnsupportedFormat,
                codecs.Count == 0 ? "the WebM file has no audio track." : $"the WebM audio is {string.Join(", ", codecs)}; only Opus (A_OPUS) is read.");
        }

        throw Corrupt($"the WebM Segment has no Tracks (none up to byte {EndOfRead}).", at: EndOfRead);
    }

    private TrackEntry ReadTrackEntry()
    {
        var entry = new TrackEntry { Offset = ElementOffset };
        _reader.EnterContainer();
        while (_reader.ReadNext())
        {
            switch (_reader.ElementId.EncodedValue)
            {
                case TrackNumberId:
                    entry.Number = _reader.ReadUInt();
                    break;
                case TrackTypeId:
                    entry.Type = (int)Math.Min(_reader.ReadUInt(), int.MaxValue);
                    break;
                case CodecIdId:
                    entry.Codec = ReadShortString("CodecID");
                    break;
                case CodecPrivateId:
                    entry.CodecPrivateOffset = ElementOffset;
                    entry.CodecPrivate = ReadSmallBinary("CodecPrivate", 1024);
                    break;
                case CodecDelayId:
                    entry.CodecDelayNs = _reader.ReadUInt();
                    break;
                case AudioId:
                    _reader.EnterContainer();
                    while (_reader.ReadNext())
                    {
                        if (_reader.ElementId.EncodedValue == ChannelsId)
                        {
                            entry.Channels = _reader.ReadUInt();
                        }
                    }

                    _reader.LeaveContainer();
                    break;
            }
        }

        _reader.LeaveContainer();
        return entry;
    }

    private OpusHead CreateHead(TrackEntry entry)
    {
        if (entry.CodecPrivate is { } head)
        {
            return OpusHead.Parse(head, _inputName, $"the CodecPrivate of WebM track {entry.Number} (at byte {entry.CodecPrivateOffset})", entry.CodecPrivateOffset);
        }

        // Matroska requires the OpusHead in CodecPrivate; without it, mono or stereo at the track's channel count is all that can be assumed.
        if (entry.Channels is not (1 or 2))
        {
            throw Corrupt($"WebM Opus track {entry.Number} (at byte {entry.Offset}) has no CodecPrivate and declares {entry.Channels} channels.", at: entry.Offset);
        }

        int channels = (int)entry.Channels;
        return new OpusHead(channels, 0, 0, 1, channels - 1, channels == 1 ? [0] : [0, 1]);
    }

    private int CreatePreSkip(TrackEntry entry)
    {
        // Matroska keeps Opus' pre-skip as CodecDelay (nanoseconds); without it, the OpusHead's pre-skip applies.
        ulong samples = entry.CodecDelayNs is { } ns ? (ulong)Math.Round(ns / 1e9 * OpusHead.SampleRate) : (ulong)CreateHead(entry).PreSkip;
        if (samples > OpusLimits.MaxPreSkip)
        {
            throw Corrupt($"WebM track {entry.Number} delays its audio by {samples} samples (CodecDelay {entry.CodecDelayNs} ns); at most {OpusLimits.MaxPreSkip} (1 s) is accepted.", at: entry.Offset);
        }

        return (int)samples;
    }

    /// <summary>Reads elements until at least one block of the Opus track was queued, or the file ends.</summary>
    private void ReadUntilNextBlock()
    {
        while (_ready.Count == 0)
        {
            if (!_reader.ReadNext())
            {
                if (_openClusters == 0)
                {
                    _ended = true;
                    return;
                }

                _reader.LeaveContainer();
                _openClusters--;
                continue;
            }

            ulong id = _reader.ElementId.EncodedValue;
            if (id == ClusterId)
            {
                // In a live recording each Cluster's size is unknown, so the next Cluster is read as a child of the one
                // before: entering it nests one level deeper, which the count keeps bounded.
                if (++_clusters > MaxClusters)
                {
                    throw new AudioFormatException(_inputName, AudioInputProblem.InputTooLarge, $"the WebM file has more than {MaxClusters} clusters.");
                }

                _reader.EnterContainer();
                _openClusters++;
            }
            else if (_openClusters > 0 && id == SimpleBlockId)
            {
                ReadBlock(discardNs: 0);
            }
            else if (_openClusters > 0 && id == BlockGroupId)
            {
                ReadBlockGroup();
            }
        }
    }

    private void ReadBlockGroup()
    {
        _reader.EnterContainer();
        long blockLength = -1;
        long blockOffset = 0;
        long discardNs = 0;
        while (_reader.ReadNext())
        {
            if (_reader.ElementId.EncodedValue == BlockId && blockLength < 0)
            {
                blockOffset = ElementOffset;
                blockLength = CopyBlock();
            }
            else if (_reader.ElementId.EncodedValue == DiscardPaddingId)
            {
                discardNs = _reader.ReadInt();
            }
        }

        _reader.LeaveContainer();
        if (blockLength >= 0)
        {
            QueueFrames(blockLength, blockOffset, discardNs);
        }
    }

    private void ReadBlock(long discardNs)
    {
        long offset = ElementOffset;
        long length = CopyBlock();
        if (length >= 0)
        {
            QueueFrames(length, offset, discardNs);
        }
    }

    /// <summary>Copies the current block into <see cref="_block"/> when it belongs to the Opus track; -1 when it does not.</summary>
    private long CopyBlock()
    {
        long size = _reader.ElementSize;
        int head = (int)Math.Min(size, 8);
        int read = head == 0 ? 0 : _reader.ReadBinary(_block, 0, head);
        if (read < 1 || !MatroskaBlock.TryReadVint(_block.AsSpan(0, read), out ulong track, out _) || track != _trackNumber)
        {
            return -1;
        }

        if (size > MaxBlockBytes)
        {
            throw new AudioFormatException(_inputName, AudioInputProblem.InputTooLarge, $"the WebM block at byte {ElementOffset} is {size} bytes; at most {MaxBlockBytes} are accepted.") { ByteOffset = ElementOffset };
        }

        if (size > _block.Length)
        {
            byte[] larger = new byte[(int)Math.Min(MaxBlockBytes, Math.Max(size, 2L * _block.Length))];
            _block.AsSpan(0, read).CopyTo(larger);
            _block = larger;
        }

        int filled = read;
        while (filled < size)
        {
            int more = _reader.ReadBinary(_block, filled, (int)size - filled);
            if (more <= 0)
            {
                throw Truncated($"the WebM block at byte {ElementOffset} ends early.", at: ElementOffset);
            }

            filled += more;
        }

        return size;
    }

    private void QueueFrames(long length, long offset, long discardNs)
    {
        var block = _block.AsSpan(0, (int)length);
        Span<int> sizes = stackalloc int[MatroskaBlock.MaxLaceFrames];
        int count = MatroskaBlock.ReadFrameSizes(block, sizes, out int at, _inputName, offset);
        int discard = (int)Math.Clamp(Math.Round(discardNs / 1e9 * OpusHead.SampleRate), 0, OpusLimits.MaxPacketSamples);
        for (int frame = 0; frame < count; frame++)
        {
            if (sizes[frame] > OpusLimits.MaxPacketBytes)
            {
                throw new AudioFormatException(_inputName, AudioInputProblem.InputTooLarge, $"a frame of the WebM block at byte {offset} is {sizes[frame]} bytes, more than an Opus packet can take.") { ByteOffset = offset };
            }

            var data = block.Slice(at, sizes[frame]).ToArray();
            at += sizes[frame];
            _ready.Enqueue(new OpusPacket(data, -1, frame == count - 1 ? discard : 0, offset));
        }
    }

    private string ReadShortString(string field)
    {
        if (_reader.ElementSize > 64)
        {
            throw Corrupt($"the WebM {field} at byte {ElementOffset} is {_reader.ElementSize} bytes; at most 64 are expected.", at: ElementOffset);
        }

        return _reader.ReadAscii().TrimEnd('\0');
    }

    private byte[] ReadSmallBinary(string field, int limit)
    {
        long size = _reader.ElementSize;
        if (size > limit)
        {
            throw Corrupt($"the WebM {field} at byte {ElementOffset} is {size} bytes; at most {limit} are expected.", at: ElementOffset);
        }

        var bytes = new byte[size];
        for (int filled = 0; filled < size;)
        {
            int read = _reader.ReadBinary(bytes, filled, (int)size - filled);
            if (read <= 0)
            {
                throw Truncated($"the WebM {field} at byte {ElementOffset} ends early.", at: ElementOffset);
            }

            filled += read;
        }

        return bytes;
    }

    private long ElementOffset => _reader.ElementPosition - PrefixBytes;

    // How far into the input the reader has come, in bytes from its start.
    private long EndOfRead => Math.Max(0, _input.Position - PrefixBytes);

    private T Guard<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is EbmlDataFormatException or EndOfStreamException or InvalidOperationException or IOException or ArgumentException or OverflowException
            && DecoderFaults.RaisedInside(ex, typeof(EbmlReader).Assembly))
        {
            // Only NEbml's refusals are relabelled: what this reader's own parsing raises is either an AudioFormatException
            // already or a bug, and propagates as it is.
            // NEbml's messages name the rule, not the place: say where it happened and what it means for the file.
            string what = ex.Message switch
            {
                "invalid element size value" => "an element declares more bytes than its parent or the file holds (a cut-off file, or a damaged size)",
                "invalid element identifier value" or "element identifier not encoded in shortest form" => "an element ID is not a valid EBML ID",
                _ when ex is EndOfStreamException => "the file ends inside an element",
                _ when ex is EbmlDataFormatException => "an element ID or size is not a valid EBML number, or runs past its parent",
                _ => "the elements do not nest as Matroska requires",
            };
            throw new AudioFormatException(
                _inputName,
                AudioInputProblem.CorruptData,
                $"the WebM structure is damaged near byte {Math.Max(0, _input.Position - PrefixBytes)}: {what} ({ex.Message}).",
                ex) { ByteOffset = Math.Max(0, _input.Position - PrefixBytes) };
        }
    }

    private void Guard(Action read) => Guard(() =>
    {
        read();
        return 0;
    });

    private AudioFormatException Corrupt(string detail, long? at = null) => new(_inputName, AudioInputProblem.CorruptHeader, detail) { ByteOffset = at };

    private AudioFormatException Truncated(string detail, long? at = null) => new(_inputName, AudioInputProblem.Truncated, detail) { ByteOffset = at };

    private sealed class TrackEntry
    {
        public ulong Number { get; set; }

        public int Type { get; set; }

        public string Codec { get; set; } = "";

        public byte[]? CodecPrivate { get; set; }

        /// <summary>Where the TrackEntry element starts, in bytes from the input's start.</summary>
        public long Offset { get; set; }

        /// <summary>Where the CodecPrivate element starts.</summary>
        public long CodecPrivateOffset { get; set; }

        public ulong? CodecDelayNs { get; set; }

        public ulong Channels { get; set; }
    }
}
