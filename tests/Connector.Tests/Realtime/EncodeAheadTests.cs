// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Engine;
using static MiniOmni.SK.Connector.Tests.Realtime.Signals;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>Issue 25, item 5: with turn detection, a turn is encoded while its speaker pauses, once, and kept only if no more speech comes.</summary>
public sealed class EncodeAheadTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    [Fact]
    public async Task ATurnEndedBySilenceIsEncodedOnceAheadOfItsEnd()
    {
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2 });

        var committed = await Converse(engine, Concat(Silence(0.3), Speech(1.2), Silence(1)));

        var counts = engine.StageCounts;
        Assert.Equal((1, 0, 1), (counts.ExactEncodes, counts.FastEncodes, counts.EncodesTakenAhead));
        // The turn ends where the pause was noticed: its padding, the speech, and 12 of the 25 frames of silence that end a turn.
        Assert.Equal(0.3 + 1.2 + 0.24, committed.TotalSeconds, 3);
    }

    [Fact]
    public async Task SpeechAfterAPauseDropsTheEncodingAheadAndTheWholeTurnIsAnswered()
    {
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2 });

        // A 0.4 s pause: long enough to start an encoding, too short to end the turn.
        var committed = await Converse(engine, Concat(Silence(0.3), Speech(0.6), Silence(0.4), Speech(0.6), Silence(1)));

        var counts = engine.StageCounts;
        Assert.Equal((2, 1), (counts.ExactEncodes, counts.EncodesTakenAhead));
        Assert.Equal(0.3 + 0.6 + 0.4 + 0.6 + 0.24, committed.TotalSeconds, 3);
    }

    // Appends the audio, lets turn detection commit and answer it; the committed turn's length.
    private static async Task<TimeSpan> Converse(MiniOmniEngine engine, float[] audio)
    {
        var client = new MiniOmniRealtimeClient(engine, new MiniOmniRealtimeClientOptions { TranscribeUserSpeech = false });
        await using var session = await client.CreateSessionAsync(new RealtimeSessionOptions { InputAudioFormat = new RealtimeAudioFormat("audio/pcm", 16000), MaxOutputTokens = 12 });
        var probe = new SessionProbe(session);

        await probe.AppendPcm(audio, chunkMs: 40);
        await probe.WaitForResponseDone();

        // The session's audio starts at 0, where the turn starts too (0.3 s of padding before the speech at 0.3 s).
        return probe.Seen.OfType<InputSpeechRealtimeServerMessage>().Single(m => m.Type == MiniOmniRealtimeServerMessageTypes.InputAudioCommitted).AudioPosition;
    }

    private static float[] Speech(double seconds) => VoiceActivityDetectorTests.Tone((int)(seconds * 16000), amplitude: 0.1f);
}
