namespace MiniOmni.SK.Audio;

/// <summary>One Opus packet as a container delivers it, with what the container says about trimming its end.</summary>
/// <param name="Data">The packet (TOC byte and frames).</param>
/// <param name="EndGranule">For the last packet of an Ogg stream, the page's granule position: the 48 kHz sample count
/// (pre-skip included) at which the stream ends; -1 when not known.</param>
/// <param name="DiscardSamples">48 kHz samples to drop from the end of this packet's output (Matroska's DiscardPadding).</param>
/// <param name="Offset">Where the packet (or its block or page) starts in the input, for messages.</param>
internal readonly record struct OpusPacket(ReadOnlyMemory<byte> Data, long EndGranule, int DiscardSamples, long Offset);

/// <summary>A container's Opus stream: its header and its packets in order.</summary>
internal interface IOpusPacketSource
{
    /// <summary>The stream's identification header.</summary>
    OpusHead Head { get; }

    /// <summary>Where the identification header starts in the input (its Ogg page, or the WebM CodecPrivate or TrackEntry).</summary>
    long HeadOffset { get; }

    /// <summary>48 kHz samples to drop from the start of the decoded audio (Ogg's pre-skip, Matroska's CodecDelay).</summary>
    int PreSkip { get; }

    /// <summary>What the container is called in messages ("Ogg", "WebM").</summary>
    string ContainerName { get; }

    /// <summary>The next packet, or false at the end of the stream.</summary>
    bool TryReadPacket(out OpusPacket packet);
}

/// <summary>Limits on what an Opus container may declare, shared by the Ogg and WebM readers.</summary>
internal static class OpusLimits
{
    /// <summary>The largest Opus packet: 120 ms as 48 frames of at most 1275 bytes, plus the packet's own headers.</summary>
    public const int MaxPacketBytes = 64 * 1024;

    /// <summary>The most 48 kHz samples one packet decodes to (120 ms).</summary>
    public const int MaxPacketSamples = 5760;

    /// <summary>The most pre-skip accepted: one second; encoders use 6.5 to 80 ms.</summary>
    public const int MaxPreSkip = OpusHead.SampleRate;
}
