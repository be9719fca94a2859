// The detector and its options are experimental with MEAI's realtime abstractions; the tests use them directly.
#pragma warning disable MEAI001

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>The energy detector on synthetic signals; every time is a sample count at 16 kHz, so decisions are exact.</summary>
public sealed class VoiceActivityDetectorTests
{
    private const int Rate = 16000;
    private const int Frame = 320; // 20 ms
    private static readonly MiniOmniVoiceActivityDetectionOptions Defaults = new();

    [Fact]
    public void SilenceHasNoSpeech()
    {
        var found = Detect(new float[5 * Rate]);

        Assert.Empty(found);
    }

    [Fact]
    public void QuietNoiseHasNoSpeech()
    {
        var found = Detect(Noise(10 * Rate, rmsDb: -55, seed: 1));

        Assert.Empty(found);
    }

    [Fact]
    public void AToneBurstIsOneTurnWithFrameExactEdges()
    {
        // 1 s silence, 1 s of a -23 dBFS tone, 2 s silence.
        var signal = Concat(new float[Rate], Tone(Rate, amplitude: 0.1f), new float[2 * Rate]);

        var found = Detect(signal);

        Assert.Equal(2, found.Count);
        var start = found[0];
        Assert.Equal(VoiceActivityKind.SpeechStarted, start.Kind);
        Assert.Equal(Rate, start.SpeechPosition);
        Assert.Equal(Rate + 5 * Frame, start.DetectedAt); // the 100 ms minimum
        Assert.Equal(Rate - 4800, start.TurnStart); // the 300 ms prefix padding
        var stop = found[1];
        Assert.Equal(VoiceActivityKind.SpeechStopped, stop.Kind);
        Assert.Equal(2 * Rate, stop.SpeechPosition);
        Assert.Equal(2 * Rate + 8000, stop.DetectedAt); // the 500 ms of silence
    }

    [Fact]
    public void ABurstInBackgroundNoiseIsFoundAtItsEdges()
    {
        var noise = Noise(4 * Rate, rmsDb: -55, seed: 2);
        var tone = Tone(Rate, amplitude: 0.1f);
        for (int i = 0; i < tone.Length; i++)
        {
            noise[Rate + i] += tone[i];
        }

        var found = Detect(noise);

        Assert.Equal([VoiceActivityKind.SpeechStarted, VoiceActivityKind.SpeechStopped], found.Select(e => e.Kind));
        Assert.Equal(Rate, found[0].SpeechPosition);
        Assert.Equal(2 * Rate, found[1].SpeechPosition);
    }

    [Fact]
    public void LoudNoiseIsSpeechToAnEnergyDetector()
    {
        // What the options' remarks warn of: loudness is all it measures.
        var signal = Concat(new float[Rate], Noise(Rate, rmsDb: -20, seed: 3), new float[Rate]);

        var found = Detect(signal);

        Assert.Equal([VoiceActivityKind.SpeechStarted, VoiceActivityKind.SpeechStopped], found.Select(e => e.Kind));
    }

    [Fact]
    public void AClickShorterThanTheMinimumSpeechIsIgnored()
    {
        var signal = Concat(new float[Rate], Tone(4 * Frame, amplitude: 0.5f), new float[Rate]);

        Assert.Empty(Detect(signal));
        Assert.Equal(2, Detect(signal, new MiniOmniVoiceActivityDetectionOptions { MinimumSpeechDuration = TimeSpan.FromMilliseconds(60) }).Count);
    }

    [Fact]
    public void APauseShorterThanTheSilenceDurationKeepsOneTurn()
    {
        var shortPause = Concat(new float[Rate], Tone(Rate / 2, 0.1f), new float[300 * Rate / 1000], Tone(Rate / 2, 0.1f), new float[Rate]);
        var longPause = Concat(new float[Rate], Tone(Rate / 2, 0.1f), new float[700 * Rate / 1000], Tone(Rate / 2, 0.1f), new float[Rate]);

        Assert.Equal(2, Detect(shortPause).Count);
        Assert.Equal(4, Detect(longPause).Count);
    }

    [Fact]
    public void SpeechThatFadesBetweenTheThresholdsContinuesButCannotStart()
    {
        // -20 dBFS for 0.5 s, then -43 dBFS (under the -40 start, over the -46 stop) for 1 s.
        float fade = (float)Math.Pow(10, -43 / 20.0) * MathF.Sqrt(2);
        var fading = Concat(new float[Rate], Tone(Rate / 2, 0.1f), Tone(Rate, fade), new float[Rate]);
        var quietOnly = Concat(new float[Rate], Tone(Rate, fade), new float[Rate]);

        var found = Detect(fading);

        Assert.Equal(2, found.Count);
        Assert.Equal(Rate + Rate / 2 + Rate, found[1].SpeechPosition);
        Assert.Empty(Detect(quietOnly));
        Assert.Equal(2, Detect(fading, new MiniOmniVoiceActivityDetectionOptions { HysteresisDb = 0 }).Count);
        Assert.Equal(Rate + Rate / 2, Detect(fading, new MiniOmniVoiceActivityDetectionOptions { HysteresisDb = 0 })[1].SpeechPosition);
    }

    [Fact]
    public void AnyChunkingGivesTheSameEvents()
    {
        var signal = Concat(Noise(Rate, -60, 4), Tone(Rate, 0.2f), new float[Rate / 3], Tone(Rate / 5, 0.05f), new float[2 * Rate]);
        var whole = Detect(signal);
        var random = new Random(5);
        var detector = new VoiceActivityDetector(Defaults, Rate);
        var chunked = new List<VoiceActivityEvent>();

        for (int at = 0; at < signal.Length;)
        {
            int count = Math.Min(signal.Length - at, random.Next(1, 1500));
            detector.Process(signal.AsSpan(at, count), chunked);
            at += count;
        }

        Assert.NotEmpty(whole);
        Assert.Equal(whole, chunked);
        Assert.Equal(signal.Length, detector.Position);
    }

    [Fact]
    public void PrefixPaddingStopsAtTheStartOfTheStream()
    {
        var found = Detect(Concat(Tone(Rate, 0.1f), new float[Rate]));

        Assert.Equal(0, found[0].SpeechPosition);
        Assert.Equal(0, found[0].TurnStart);
    }

    [Fact]
    public void ResetForgetsSpeechInProgress()
    {
        var detector = new VoiceActivityDetector(Defaults, Rate);
        var found = new List<VoiceActivityEvent>();
        detector.Process(Tone(Rate / 2, 0.1f), found);
        Assert.True(detector.IsSpeaking);

        detector.Reset();
        detector.Process(new float[Rate], found);

        Assert.False(detector.IsSpeaking);
        Assert.Equal([VoiceActivityKind.SpeechStarted], found.Select(e => e.Kind));
    }

    [Fact]
    public void APauseIsReportedAtHalfTheSilenceThatEndsATurnAndForgottenWhenSpeechResumes()
    {
        var detector = new VoiceActivityDetector(Defaults, Rate);
        var found = new List<VoiceActivityEvent>();

        detector.Process(Concat(Tone(Rate, amplitude: 0.1f), new float[11 * Frame]), found);
        Assert.True(detector.IsSpeaking);
        Assert.Null(detector.Pause); // 220 ms of silence: not yet the 12 frames that are half of the 500 ms (25 frames)
        detector.Process(new float[Frame], found);
        Assert.Equal(new SpeechPause(Rate, Rate + 12 * Frame), detector.Pause);

        detector.Process(Tone(Rate / 2, amplitude: 0.1f), found);
        Assert.Null(detector.Pause);
        detector.Process(new float[Rate], found);
        Assert.Equal([VoiceActivityKind.SpeechStarted, VoiceActivityKind.SpeechStopped], found.Select(e => e.Kind));
        Assert.Null(detector.Pause);
    }

    [Theory]
    [InlineData(nameof(MiniOmniVoiceActivityDetectionOptions.ThresholdDb))]
    [InlineData(nameof(MiniOmniVoiceActivityDetectionOptions.HysteresisDb))]
    [InlineData(nameof(MiniOmniVoiceActivityDetectionOptions.SilenceDuration))]
    [InlineData(nameof(MiniOmniVoiceActivityDetectionOptions.PrefixPadding))]
    [InlineData(nameof(MiniOmniVoiceActivityDetectionOptions.MinimumSpeechDuration))]
    public void AnOptionOutOfRangeIsNamed(string option)
    {
        var options = option switch
        {
            nameof(MiniOmniVoiceActivityDetectionOptions.ThresholdDb) => new MiniOmniVoiceActivityDetectionOptions { ThresholdDb = 3 },
            nameof(MiniOmniVoiceActivityDetectionOptions.HysteresisDb) => new MiniOmniVoiceActivityDetectionOptions { HysteresisDb = double.NaN },
            nameof(MiniOmniVoiceActivityDetectionOptions.SilenceDuration) => new MiniOmniVoiceActivityDetectionOptions { SilenceDuration = TimeSpan.Zero },
            nameof(MiniOmniVoiceActivityDetectionOptions.PrefixPadding) => new MiniOmniVoiceActivityDetectionOptions { PrefixPadding = TimeSpan.FromSeconds(-1) },
            _ => new MiniOmniVoiceActivityDetectionOptions { MinimumSpeechDuration = TimeSpan.FromSeconds(-1) },
        };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new VoiceActivityDetector(options, Rate));

        Assert.Equal(option, error.ParamName);
    }

    private static List<VoiceActivityEvent> Detect(float[] signal, MiniOmniVoiceActivityDetectionOptions? options = null)
    {
        var found = new List<VoiceActivityEvent>();
        new VoiceActivityDetector(options ?? Defaults, Rate).Process(signal, found);
        return found;
    }

    internal static float[] Tone(int samples, float amplitude, double frequency = 440) =>
        [.. Enumerable.Range(0, samples).Select(i => amplitude * (float)Math.Sin(2 * Math.PI * frequency * i / Rate))];

    internal static float[] Noise(int samples, double rmsDb, int seed)
    {
        // Uniform noise in [-a, a] has an RMS of a / sqrt(3).
        float amplitude = (float)(Math.Pow(10, rmsDb / 20) * Math.Sqrt(3));
        var random = new Random(seed);
        return [.. Enumerable.Range(0, samples).Select(_ => amplitude * (2 * random.NextSingle() - 1))];
    }

    internal static float[] Concat(params float[][] parts) => [.. parts.SelectMany(p => p)];
}
