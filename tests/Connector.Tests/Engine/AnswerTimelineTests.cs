using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>Issue 25: where an answer's time to its first speech goes, stage by stage, and how few steps that speech waits for.</summary>
public sealed class AnswerTimelineTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private static readonly MiniOmniEngineOptions Options = new() { ContextSize = 1024, Threads = 2 };

    [Fact]
    public async Task TheFirstSpeechComesAfterTheDelayPatternAndTwoFramesAndItsStagesAddUpToIt()
    {
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, Options);
        var events = new List<MiniOmniEvent>();
        await foreach (var item in engine.GenerateAsync(new MiniOmniRequest { Audio = fixture.Question, MaxTokens = 24, EncoderMode = EncoderMode.Fast }))
        {
            events.Add(item);
        }

        var completed = events.OfType<AnswerCompleted>().Single();
        var timeline = completed.Timeline!;
        var stages = timeline.Stages();

        // The delay pattern's first frame at step 8, then the first chunk's other frame and one of lookahead: step 10.
        Assert.Equal(10, DelayPattern.LayerCount + StreamingOptions.Speech.ChunkFrames + StreamingOptions.Speech.LookaheadFrames);
        Assert.Equal(10, timeline.StepsToFirstChunk);
        // The answer held after that step for its codec: the first chunk was decoded before the step after it.
        Assert.Equal(10, timeline.StepsAtCodecStart);
        Assert.Equal(StreamingOptions.Speech.ChunkFrames, timeline.FirstChunkFrames);
        Assert.Equal(StreamingOptions.Speech.ChunkFrames * 2048, events.OfType<SpeechChunk>().First().Samples.Length);
        // Every prompt position decoded once, in one decode (nothing else was running), none shared from a cache.
        Assert.Equal((completed.PromptTokens, 1, 0), (timeline.PromptPositionsDecoded, timeline.PromptDecodes, timeline.PromptPositionsReused));
        Assert.Equal(
            ["encoder_wait", "mel", "encoder_and_adapter", "to_scheduler", "admission", "prompt", "steps", "codec_wait", "codec", "delivery"],
            stages.Keys);
        Assert.All(stages.Values, seconds => Assert.True(seconds >= 0, string.Join(", ", stages)));
        Assert.Equal(completed.TimeToFirstSpeech!.Value.TotalSeconds, stages.Values.Sum(), 6);
        Assert.Same(timeline, engine.LastSpokenTimeline);
    }
}
