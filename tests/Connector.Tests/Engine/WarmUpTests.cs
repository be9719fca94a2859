using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>Issue 25, item 1: a host that warms the engine up has run every stage once before it says it is ready.</summary>
public sealed class WarmUpTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private static readonly MiniOmniEngineOptions Options = new() { ContextSize = 1024, Threads = 2 };

    [Fact]
    public async Task WarmUpRunsEveryStageOnce()
    {
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, Options);
        var before = engine.StageCounts;

        await engine.WarmUpAsync();

        var after = engine.StageCounts;
        Assert.Equal(default, before with { PromptDecodes = 0, StepDecodes = 0 });
        Assert.Equal(1, after.ExactEncodes);
        Assert.Equal(1, after.FastEncodes);
        Assert.True(after.PromptDecodes >= 1, $"{after.PromptDecodes} prompt decodes");
        Assert.True(after.StepDecodes >= 1, $"{after.StepDecodes} step decodes");
        // The dummy answer, then the same question as a realtime turn: two answers.
        Assert.InRange(after.AnswerSteps, 2, 2 * MiniOmniEngine.WarmUpSteps);
        // The realtime turn's transcript was decoded beside its answer, sharing its prompt: the realtime path ran.
        Assert.True(engine.Scheduler.ReusedPromptPositions > 0, "no transcript shared a realtime answer's prompt");
        Assert.True(after.CodecRuns >= 1, $"{after.CodecRuns} codec runs");
        Assert.True(engine.Scheduler.CostsMeasured);
        Assert.True(engine.IsWarmedUp);
    }

    [Fact]
    public async Task AnEngineLoadedForOneAnswerIsNotWarmedUp()
    {
        // What `miniomni run` loads: its one answer pays for its own first use, and no dummy question runs before it.
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, Options);
        await foreach (var _ in engine.GenerateAsync(new MiniOmniRequest { Audio = fixture.Question, MaxTokens = 12 }))
        {
        }

        Assert.False(engine.IsWarmedUp);
        Assert.Equal(1, engine.StageCounts.ExactEncodes + engine.StageCounts.FastEncodes);
    }

    [Fact]
    public async Task TheLazyEngineWarmsUpWhileLoading()
    {
        using var lazy = new LazyMiniOmniEngine(new MiniOmniOptions { ModelPath = fixture.ModelPath, Engine = Options });

        var engine = await lazy.LoadAsync();

        Assert.True(engine.IsWarmedUp);
        var counts = engine.StageCounts;
        Assert.Equal((1, 1), (counts.ExactEncodes, counts.FastEncodes));
        Assert.True(counts.CodecRuns >= 1 && counts.StepDecodes >= 1 && counts.PromptDecodes >= 1, counts.ToString());
    }
}
