using NAudio.Wave;

namespace MiniOmni.SK.Audio.Tests.Fuzzing;

/// <summary>The seed inputs of each format, kept short (0.1-0.3 s) so thousands of cases decode in seconds, and their fields.</summary>
internal static class FuzzTargets
{
    private static readonly string?[] Generic = [null, "application/octet-stream", "audio/*"];

    public static FuzzTarget Wav { get; } = new(
        "WAV",
        [
            TestWaves.Wav(TestWaves.Sine(16000, 1, 440, 0.5, 0.2), 16000, 1, TestEncoding.Pcm16),
            TestWaves.Wav(TestWaves.Sine(44100, 2, 440, 0.5, 0.1), 44100, 2, TestEncoding.Pcm24, extensible: true),
            TestWaves.Wav(TestWaves.Sine(48000, 3, 440, 0.5, 0.1), 48000, 3, TestEncoding.Float32),
            TestWaves.Wav(TestWaves.Sine(8000, 1, 440, 0.5, 0.2), 8000, 1, TestEncoding.Pcm8),
            TestWaves.Wav(TestWaves.Sine(22050, 2, 440, 0.5, 0.1), 22050, 2, TestEncoding.Float64),
        ],
        WavFields,
        [.. Generic, "audio/wav", "audio/x-wav", "audio/mpeg", "audio/webm;codecs=opus"]);

    public static FuzzTarget Mp3 { get; } = new(
        "MP3",
        [
            File.ReadAllBytes(Fixture.Audio("sine440-stereo-44k1.mp3"))[..1700],
            [.. "ID3"u8, 3, 0, 0, 0, 0, 0, 20, .. new byte[20], .. File.ReadAllBytes(Fixture.Audio("sine440-stereo-44k1.mp3"))[..1400]],
        ],
        Mp3Fields,
        [.. Generic, "audio/mpeg", "audio/mp3", "audio/ogg"]);

    public static FuzzTarget Ogg { get; } = new(
        "Ogg",
        [
            TestContainers.OggOpus(OpusPackets("tones-stereo-48k.opus", 8), TestContainers.OpusHead(channels: 2), packetsPerPage: 3),
            TestContainers.OggOpus(OpusPackets("tones-mono-16k.ogg", 10), TestContainers.OpusHead(channels: 1), finalGranule: 9000, packetsPerPage: 3),
            TestContainers.OggOpus(Enumerable.Repeat(TestContainers.SilentOpusPacket, 8).ToList()),
        ],
        OggFields,
        [.. Generic, "audio/ogg", "audio/ogg;codecs=opus", "audio/opus", "audio/webm"],
        TestContainers.FixOggCrcs);

    public static FuzzTarget Webm { get; } = new(
        "WebM",
        [
            ChromeRecordingStart(),
            TestContainers.Webm(
                [[.. OpusPackets("tones-stereo-48k.opus", 4).SelectMany(p => TestContainers.SimpleBlock([p])), .. TestContainers.BlockGroup(OpusPackets("tones-stereo-48k.opus", 5)[^1], 10_000_000)]],
                TestContainers.OpusHead(channels: 2),
                unknownSizes: false,
                codecDelayNs: 6_500_000),
            TestContainers.Webm([TestContainers.SimpleBlock(Enumerable.Repeat(TestContainers.SilentOpusPacket, 4).ToList(), lacing: 1), TestContainers.SimpleBlock(Enumerable.Repeat(TestContainers.SilentOpusPacket, 3).ToList(), lacing: 3)]),
        ],
        WebmFields,
        [.. Generic, "audio/webm", "audio/webm;codecs=opus", "video/webm", "audio/ogg"]);

    /// <summary>Random bytes under every media type the decoder knows (the seed is empty: only random-bytes mutations matter).</summary>
    public static FuzzTarget Random { get; } = new(
        "random",
        [[0x52, 0x49, 0x46, 0x46], [0x4F, 0x67, 0x67, 0x53], [0x1A, 0x45, 0xDF, 0xA3], [0xFF, 0xFB, 0x90, 0x64], [0x49, 0x44, 0x33, 0x04]],
        _ => [],
        [.. Generic, "audio/wav", "audio/mpeg", "audio/ogg", "audio/opus", "audio/webm;codecs=opus", "video/webm"]);

    private static List<byte[]> OpusPackets(string fixture, int count) =>
        TestContainers.OggPackets(File.ReadAllBytes(Fixture.Audio(fixture)))[..count];

    /// <summary>The Chrome recording cut after its first 6 blocks: with unknown sizes, a cut between blocks is still valid.</summary>
    private static byte[] ChromeRecordingStart()
    {
        byte[] chrome = File.ReadAllBytes(Fixture.Audio("chrome-mediarecorder.webm"));
        var blocks = TestContainers.EbmlElements(chrome).Where(e => chrome[e.Offset] == 0xA3).ToList();
        return chrome[..blocks[6].Offset];
    }

    private static IReadOnlyList<Field> WavFields(byte[] wav)
    {
        var fields = new List<Field> { new(4, 4, false, "RIFF size") };
        int at = 12;
        while (at + 8 <= wav.Length && fields.Count < 64)
        {
            string id = System.Text.Encoding.ASCII.GetString(wav, at, 4);
            uint size = FuzzCases.U32(wav, at + 4);
            fields.Add(new(at + 4, 4, false, $"{id} size"));
            if (id == "fmt ")
            {
                fields.AddRange(
                [
                    new(at + 8, 2, false, "format tag"), new(at + 10, 2, false, "channels"), new(at + 12, 4, false, "sample rate"),
                    new(at + 16, 4, false, "bytes per second"), new(at + 20, 2, false, "block align"), new(at + 22, 2, false, "bits"),
                ]);
                if (size >= 40)
                {
                    fields.AddRange([new(at + 24, 2, false, "cbSize"), new(at + 26, 2, false, "valid bits"), new(at + 32, 4, false, "sub-format")]);
                }
            }

            at += 8 + (int)Math.Min(size, (uint)wav.Length);
        }

        return fields;
    }

    private static IReadOnlyList<Field> Mp3Fields(byte[] mp3)
    {
        var fields = new List<Field>();
        if (mp3.AsSpan().StartsWith("ID3"u8))
        {
            fields.Add(new(6, 4, true, "ID3 size"));
            fields.Add(new(3, 2, true, "ID3 version"));
        }

        for (int at = 0; at + 4 <= mp3.Length && fields.Count < 64; at++)
        {
            if (mp3[at] == 0xFF && (mp3[at + 1] & 0xE0) == 0xE0)
            {
                fields.Add(new(at, 4, true, "frame header"));
                fields.Add(new(at + 2, 1, true, "bitrate/rate byte"));
            }
        }

        return fields;
    }

    private static IReadOnlyList<Field> OggFields(byte[] ogg)
    {
        var fields = new List<Field>();
        var pages = TestContainers.OggPageOffsets(ogg);
        foreach (int at in pages)
        {
            fields.AddRange(
            [
                new(at + 4, 1, false, "version"), new(at + 5, 1, false, "flags"), new(at + 6, 8, false, "granule"),
                new(at + 14, 4, false, "serial"), new(at + 18, 4, false, "sequence"), new(at + 26, 1, false, "segments"),
                new(at + 27, 1, false, "first lacing value"),
            ]);
        }

        if (pages.Count > 0 && ogg.Length > 27 + ogg[26] + 19)
        {
            int head = 27 + ogg[26];
            fields.AddRange(
            [
                new(head + 8, 1, false, "OpusHead version"), new(head + 9, 1, false, "channels"), new(head + 10, 2, false, "pre-skip"),
                new(head + 16, 2, false, "output gain"), new(head + 18, 1, false, "mapping family"),
            ]);
        }

        return fields;
    }

    private static IReadOnlyList<Field> WebmFields(byte[] webm)
    {
        var fields = new List<Field>();
        foreach (var (offset, sizeOffset, sizeLength) in TestContainers.EbmlElements(webm).Take(200))
        {
            fields.Add(new(sizeOffset, sizeLength, true, "element size"));
            fields.Add(new(offset, 1, true, "element ID"));
            if (webm[offset] == 0xA3 && sizeOffset + sizeLength + 5 <= webm.Length)
            {
                int body = sizeOffset + sizeLength;
                fields.Add(new(body, 1, true, "block track"));
                fields.Add(new(body + 3, 1, true, "block flags"));
                fields.Add(new(body + 4, 1, true, "lace count or TOC"));
            }
        }

        return fields;
    }
}
