using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>The speech-to-text client on recordings longer than Mini-Omni hears: windows in, one update per window out.</summary>
public sealed class LongSpeechToTextTests
{
    private const int Rate = 16000;

    [Fact]
    public async Task ARecordingOf95SecondsIsTranscribedWindowByWindowWithIncreasingTimes()
    {
        int call = 0;
        var engine = new ScriptedEngine(_ => [new TextDelta($" part{Interlocked.Increment(ref call)} "), ScriptedEngine.Completed(steps: 5)]);
        using var client = new MiniOmniSpeechToTextClient(engine.Object);
        byte[] wav = Recording(95);

        var updates = new List<SpeechToTextResponseUpdate>();
        await foreach (var update in client.GetStreamingTextAsync(new MemoryStream(wav)))
        {
            updates.Add(update);
        }

        var windows = updates.Where(u => u.Kind == SpeechToTextResponseUpdateKind.TextUpdated).ToList();
        Assert.True(windows.Count >= 4, $"{windows.Count} windows");
        Assert.Equal(engine.Requests.Count, windows.Count);
        Assert.All(engine.Requests, r => Assert.InRange(r.Audio!.Length, 1, 30 * Rate));
        Assert.Equal(MiniOmniTask.Asr, engine.Requests[0].Task);
        for (int i = 1; i < windows.Count; i++)
        {
            Assert.True(windows[i].StartTime >= windows[i - 1].EndTime);
        }

        Assert.Equal(string.Join(" ", Enumerable.Range(1, windows.Count).Select(i => $"part{i}")), string.Concat(windows.Select(w => w.Text)));
        var close = updates[^1];
        Assert.Equal(SpeechToTextResponseUpdateKind.SessionClose, close.Kind);
        Assert.Equal(5 * windows.Count, close.Contents.OfType<UsageContent>().Single().Details.OutputTokenCount);
    }

    [Fact]
    public async Task ARecordingOverTheLimitIsRefusedNamingIt()
    {
        var engine = new ScriptedEngine(ScriptedEngine.Completed());
        using var client = new MiniOmniSpeechToTextClient(engine.Object) { MaxAudioDuration = TimeSpan.FromSeconds(60) };

        var error = await Assert.ThrowsAsync<AudioFormatException>(() => client.GetTextAsync(new MemoryStream(Recording(95))));

        Assert.Equal(AudioInputProblem.TooLong, error.Problem);
        Assert.Empty(engine.Requests);
    }

    private static byte[] Recording(int seconds)
    {
        // 5 s tones with 1 s pauses.
        var samples = new float[seconds * Rate];
        for (int i = 0; i < samples.Length; i++)
        {
            samples[i] = i % (6 * Rate) < 5 * Rate ? (float)(0.3 * Math.Sin(2 * Math.PI * 300 * i / Rate)) : 0;
        }

        using var stream = new MemoryStream();
        Pcm16Wave.Write(stream, samples, Rate);
        return stream.ToArray();
    }
}
