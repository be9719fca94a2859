using System.Buffers.Binary;

namespace MiniOmni.SK.Audio.Tests;

/// <summary>Everything an Ogg or WebM file declares is bounded: forged sizes, counts and headers fail with a named error.</summary>
public sealed class OpusContainerLimitsTests
{
    private static readonly List<byte[]> Second = Enumerable.Repeat(TestContainers.SilentOpusPacket, 50).ToList();

    private static AudioFormatException Refused(byte[] input, AudioInputProblem problem, params string[] mentions)
    {
        var error = Assert.Throws<AudioFormatException>(() => AudioDecoder.Decode(input, inputName: "recording"));
        Assert.Equal(problem, error.Problem);
        Assert.Contains("recording", error.Message);
        foreach (string mention in mentions)
        {
            Assert.Contains(mention, error.Message);
        }

        return error;
    }

    [Fact]
    public void AnOggPageWithABadChecksumIsNamedWithItsOffset()
    {
        byte[] ogg = TestContainers.OggOpus(Second);
        int third = TestContainers.OggPageOffsets(ogg)[2];
        ogg[third + 40] ^= 0x10;

        Refused(ogg, AudioInputProblem.CorruptData, $"page at byte {third}", "checksum");
    }

    [Fact]
    public void AnOggPacketLongerThanAnyOpusPacketIsRefusedBeforeItIsBuffered()
    {
        var file = new MemoryStream();
        uint sequence = 0;
        TestContainers.WriteOggPage(file, [TestContainers.OpusHead()], 0x02, 0, ref sequence);
        TestContainers.WriteOggPage(file, [[.. "OpusTags"u8, 0, 0, 0, 0, 0, 0, 0, 0]], 0, 0, ref sequence);
        for (int page = 0; page < 3; page++)
        {
            // Every lacing value 255: the packet never ends, each page continues it.
            TestContainers.WriteOggPageRaw(file, Enumerable.Repeat((byte)255, 255).ToArray(), new byte[255 * 255], page == 0 ? (byte)0 : (byte)1, -1, ref sequence);
        }

        Refused(file.ToArray(), AudioInputProblem.InputTooLarge, "65536 bytes");
    }

    [Theory]
    [InlineData(0, "0 channels")]
    [InlineData(3, "3 channels with mapping family 0")]
    public void AnOpusHeadWithAnImpossibleChannelCountIsNamed(int channels, string mention)
    {
        byte[] head = TestContainers.OpusHead();
        head[9] = (byte)channels;

        Refused(TestContainers.OggOpus(Second, head), AudioInputProblem.CorruptHeader, mention);
    }

    [Fact]
    public void AMappingFamilyOneHeadThatMapsPastItsStreamsIsNamed()
    {
        byte[] head = [.. TestContainers.OpusHead(), 1, 0, 5, 6];
        head[9] = 2;
        head[18] = 1;

        Refused(TestContainers.OggOpus(Second, head), AudioInputProblem.CorruptHeader, "coded channel 5");
    }

    [Fact]
    public void MultichannelOpusIsDecodedAndDownmixed()
    {
        // Mapping family 1, 3 channels as one stereo stream plus one mono stream: each packet holds two self-delimited frames.
        byte[] head = [.. TestContainers.OpusHead(preSkip: 0), 2, 1, 0, 1, 2];
        head[9] = 3;
        head[18] = 1;
        byte[] stereoSilence = [0xFC, 0xFF, 0xFE];
        byte[] packet = [stereoSilence[0], 2, .. stereoSilence[1..], .. TestContainers.SilentOpusPacket];

        float[] decoded = AudioDecoder.Decode(TestContainers.OggOpus(Enumerable.Repeat(packet, 50).ToList(), head));

        Assert.Equal(16000, decoded.Length);
    }

    [Fact]
    public void AWebmBlockLargerThanTheLimitIsRefused()
    {
        byte[] big = new byte[WebmOpusReader.MaxBlockBytes + 1];
        big[0] = 0x81;
        byte[] webm = TestContainers.Webm([TestContainers.Element(0xA3, big)]);

        Refused(webm, AudioInputProblem.InputTooLarge, $"at most {WebmOpusReader.MaxBlockBytes}");
    }

    [Fact]
    public void LaceSizesThatRunPastTheBlockAreNamed()
    {
        byte[] block = TestContainers.SimpleBlock([TestContainers.SilentOpusPacket, TestContainers.SilentOpusPacket], lacing: 1);
        block[^8] = 250; // the first frame's Xiph size: far more than the block holds

        Refused(TestContainers.Webm([block]), AudioInputProblem.CorruptHeader, "lace sizes");
    }

    [Fact]
    public void TooManyClustersAreRefused()
    {
        byte[] webm = TestContainers.Webm(Enumerable.Repeat(Array.Empty<byte>(), WebmOpusReader.MaxClusters + 1));

        Refused(webm, AudioInputProblem.InputTooLarge, "clusters");
    }

    [Fact]
    public void AnImplausibleCodecDelayIsNamed()
    {
        byte[] webm = TestContainers.Webm([TestContainers.SimpleBlock([TestContainers.SilentOpusPacket])], codecDelayNs: 5_000_000_000);

        Refused(webm, AudioInputProblem.CorruptHeader, "CodecDelay 5000000000 ns");
    }

    [Fact]
    public void AnElementSizeBeyondTheFileIsDamageNamedWithItsOffset()
    {
        byte[] webm = TestContainers.Webm([TestContainers.SimpleBlock([TestContainers.SilentOpusPacket])], unknownSizes: false);
        var block = TestContainers.EbmlElements(webm).Last();
        BinaryPrimitives.WriteUInt64BigEndian(webm.AsSpan(block.SizeOffset), 0x0100_0000_7FFF_FFFF);

        Refused(webm, AudioInputProblem.CorruptData, "WebM structure is damaged near byte");
    }

    [Fact]
    public void ClustersBeforeTracksAreNamed()
    {
        byte[] header = TestContainers.Element(0x1A45DFA3, TestContainers.Text(0x4282, "webm"));
        byte[] cluster = TestContainers.Element(0x1F43B675, TestContainers.SimpleBlock([TestContainers.SilentOpusPacket]));
        byte[] webm = [.. header, .. TestContainers.Element(0x18538067, cluster)];

        Refused(webm, AudioInputProblem.CorruptHeader, "before the Tracks");
    }
}
