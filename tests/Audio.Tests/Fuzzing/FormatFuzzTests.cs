using Xunit.Abstractions;

namespace MiniOmni.SK.Audio.Tests.Fuzzing;

// Each format's cases through AudioDecoder's public entry points: every one ends in samples or an AudioFormatException
// naming the input (InputName) and, for a damaged structure or coded data, the byte offset (ByteOffset). Each target's
// refused and decoded cases are held to floors (random bytes decode to nothing by design: all are refused). CI runs the fixed cases below; set CsCheck_Iter or CsCheck_Time to run more (see src/Audio/README.md).

public sealed class WavFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void MutatedWavDecodesOrFailsCleanly() =>
        AudioFuzz.Run(FuzzCases.For(FuzzTargets.Wav), AudioFuzz.DecodesOrFailsCleanly, ciCases: 1000, ciSeed: 0x5741_5645, output, "WAV", minRefused: 700, minAccepted: 90);
}

public sealed class Mp3FuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void MutatedMp3DecodesOrFailsCleanly() =>
        AudioFuzz.Run(FuzzCases.For(FuzzTargets.Mp3), AudioFuzz.DecodesOrFailsCleanly, ciCases: 500, ciSeed: 0x4D50_3300, output, "MP3", minRefused: 220, minAccepted: 170);
}

public sealed class OggOpusFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void MutatedOggOpusDecodesOrFailsCleanly() =>
        AudioFuzz.Run(FuzzCases.For(FuzzTargets.Ogg), AudioFuzz.DecodesOrFailsCleanly, ciCases: 800, ciSeed: 0x4F67_6753, output, "Ogg", minRefused: 600, minAccepted: 50);
}

public sealed class WebmOpusFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void MutatedWebmOpusDecodesOrFailsCleanly() =>
        AudioFuzz.Run(FuzzCases.For(FuzzTargets.Webm), AudioFuzz.DecodesOrFailsCleanly, ciCases: 700, ciSeed: 0x1A45_DFA3, output, "WebM", minRefused: 520, minAccepted: 40);
}

public sealed class RandomBytesFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void RandomBytesUnderEveryMediaTypeFailCleanly() =>
        AudioFuzz.Run(FuzzCases.For(FuzzTargets.Random), AudioFuzz.DecodesOrFailsCleanly, ciCases: 500, ciSeed: 0x5241_4E44, output, "random", minRefused: 500, minAccepted: 0);
}
