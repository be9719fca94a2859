using System.Collections.Concurrent;
using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using Moq;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// The scheduler's control flow over a scripted backbone (Moq): each head's logits put all their weight on the token the
/// script names for that sequence and step, so the release's rules, budgets, batching and cancellation can be checked
/// step by step without a model.
/// </summary>
public sealed class DecodeSchedulerTests : IClassFixture<DecodeSchedulerTests.TokenTable>
{
    private static readonly MiniOmniVocabulary Vocabulary = GoldenTasks.ReleaseVocabulary;
    private static readonly SpecialTokens Tokens = Vocabulary.Tokens;
    private readonly TokenTable _table;

    public DecodeSchedulerTests(TokenTable table) => _table = table;

    [Fact]
    public async Task AfterEndOfTextEveryTextTokenIsPadText()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), step == 2 ? Tokens.EndOfText : 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 6), CancellationToken.None));

        Assert.Equal([100, 101, Tokens.EndOfText, Tokens.PadText, Tokens.PadText, Tokens.PadText], steps.Select(s => s.Text));
        Assert.All(steps, s => Assert.Equal(Speech(5), s.Audio));
    }

    [Fact]
    public async Task EndOfAudioOnTheLastLayerStopsASpeakingAnswerAndFreesItsCache()
    {
        var backbone = new ScriptedBackbone((_, step) => (step == 4 ? [.. Speech(5)[..6], Tokens.EndOfAudio] : Speech(5), 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 50), CancellationToken.None));

        Assert.Equal(4, steps.Count);
        backbone.Mock.Verify(b => b.RemoveSequence((LLamaSeqId)0), Times.Once);
    }

    [Fact]
    public async Task EndOfAudioOnTheFirstStepDoesNotStopTheAnswer()
    {
        var backbone = new ScriptedBackbone((_, step) => (step is 0 or 3 ? [.. Speech(5)[..6], Tokens.EndOfAudio] : Speech(5), 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 50), CancellationToken.None));

        Assert.Equal(3, steps.Count);
    }

    [Fact]
    public async Task TextAnswersStopAtEndOfTextWithoutKeepingIt()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), step == 3 ? Tokens.EndOfText : 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 50), CancellationToken.None));

        Assert.Equal([100, 101, 102], steps.Select(s => s.Text));
        Assert.All(steps, s => Assert.All(s.Audio, code => Assert.Equal(Tokens.PadAudio, code)));
    }

    [Fact]
    public async Task TheBudgetEndsAnAnswerAndItsLastStepIsNotFedBack()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 5), CancellationToken.None));

        Assert.Equal(5, steps.Count);
        Assert.Equal(5, backbone.Decodes.Count); // the prompt, then steps 1-4 fed back
    }

    [Fact]
    public async Task CancellationMidStreamStopsTheAnswerFreesItsCacheAndSparesTheOthers()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + (step % 1000)));
        using var scheduler = Create(backbone, contextSize: 1 << 20);
        using var cancellation = new CancellationTokenSource();

        var endless = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 100_000), cancellation.Token);
        var other = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 40), CancellationToken.None);
        Assert.True(await endless.WaitToReadAsync());
        await endless.ReadAsync();
        await endless.ReadAsync();
        // Both answers running before the cancel: the other then holds a sequence of its own, never the freed one (had it
        // been admitted only after the cancel, it would reuse sequence 0 and free it again when it ends).
        await other.ReadAsync();
        cancellation.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await ReadAll(endless));
        Assert.Equal(39, (await ReadAll(other)).Count);
        backbone.Mock.Verify(b => b.RemoveSequence((LLamaSeqId)0), Times.Once);
    }

    [Fact]
    public async Task ActiveAnswersShareOneDecodePerStep()
    {
        using var gate = new ManualResetEventSlim();
        var backbone = new ScriptedBackbone((sequence, step) => (Speech(5), 100 + step)) { Gate = gate };
        using var scheduler = Create(backbone);

        var first = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 20), CancellationToken.None);
        var second = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 20), CancellationToken.None);
        gate.Set();
        var steps = await Task.WhenAll(ReadAll(first), ReadAll(second));

        Assert.All(steps, s => Assert.Equal(20, s.Count));
        int together = backbone.Decodes.Count(rows => rows.Select(r => r.Sequence).Distinct().Count() == 2);
        Assert.True(together >= 18, $"only {together} of {backbone.Decodes.Count} decodes held both answers");
        Assert.True(backbone.Decodes.Count <= 22, $"{backbone.Decodes.Count} decodes for two answers of 20 steps");
    }

    [Fact]
    public async Task AnswersBeyondTheMaximumWaitForAFreeSlot()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, maxActiveAnswers: 1);

        var first = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 10), CancellationToken.None);
        var second = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 10), CancellationToken.None);
        await Task.WhenAll(ReadAll(first), ReadAll(second));

        Assert.DoesNotContain(backbone.Decodes, rows => rows.Select(r => r.Sequence).Distinct().Count() > 1);
        Assert.Equal(20, backbone.Decodes.Count);
    }

    [Fact]
    public async Task AnswersThatWouldOverfillTheCacheWaitForRoom()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        var request = TextIn(MiniOmniTask.T1T2, maxSteps: 10);
        using var scheduler = Create(backbone, contextSize: (uint)(request.CacheCells * 3 / 2));

        var answers = new[] { scheduler.Submit(request, CancellationToken.None), scheduler.Submit(request, CancellationToken.None) };
        await Task.WhenAll(answers.Select(ReadAll));

        Assert.DoesNotContain(backbone.Decodes, rows => rows.Select(r => r.Sequence).Distinct().Count() > 1);
    }

    [Fact]
    public async Task BatchParallelDecodesTheSharedPromptOnceAndTakesTextFromTheThinkingRow()
    {
        var backbone = new ScriptedBackbone((sequence, step) => (Speech(7), (sequence == 1 ? 200 : 300) + step));
        using var scheduler = Create(backbone);
        var (speaking, thinking) = new PromptBuilder(Vocabulary).ForBatchParallel(featureFrames: 3);
        var request = new GenerationRequest(MiniOmniTask.A1A2, speaking, thinking, new float[3 * TokenTable.Width], new SamplingOptions(), MaxSteps: 4);

        var steps = await ReadAll(scheduler.Submit(request, CancellationToken.None));

        Assert.Equal([200, 201, 202, 203], steps.Select(s => s.Text));
        Assert.All(steps, s => Assert.Equal(Speech(7), s.Audio));
        backbone.Mock.Verify(b => b.CopySequence((LLamaSeqId)0, (LLamaSeqId)1, 0, speaking.Length - 1), Times.Once);
        Assert.Empty(backbone.Decodes[0]); // the shared prefix asks for no logits
        // The speaking row computes only the audio heads, the thinking row only the text head.
        Assert.All(backbone.Decodes.Skip(1), rows => Assert.Equal([(0, OutputHeadSet.Audio), (1, OutputHeadSet.Text)], rows.Select(r => (r.Sequence, r.Heads))));
    }

    [Fact]
    public async Task OnceTheTextHasEndedABatchParallelAnswerDecodesOnlyItsSpeakingRow()
    {
        var backbone = new ScriptedBackbone((sequence, step) => (Speech(7), sequence == 1 && step == 2 ? Tokens.EndOfText : 200 + step));
        using var scheduler = Create(backbone);
        var (speaking, thinking) = new PromptBuilder(Vocabulary).ForBatchParallel(featureFrames: 3);
        var request = new GenerationRequest(MiniOmniTask.A1A2, speaking, thinking, new float[3 * TokenTable.Width], new SamplingOptions(), MaxSteps: 6);

        var steps = await ReadAll(scheduler.Submit(request, CancellationToken.None));

        Assert.Equal([200, 201, Tokens.EndOfText, Tokens.PadText, Tokens.PadText, Tokens.PadText], steps.Select(s => s.Text));
        Assert.Equal(6, steps.Count(s => s.Audio.SequenceEqual(Speech(7))));
        // Prefix, row prompts, then steps 2 and 3 with both rows; steps 4 to 6 speak alone.
        Assert.Equal(7, backbone.Decodes.Count);
        Assert.All(backbone.Decodes.Skip(1).Take(3), rows => Assert.Equal(2, rows.Length));
        Assert.All(backbone.Decodes.Skip(4), rows => Assert.Equal([(0, OutputHeadSet.Audio)], rows.Select(r => (r.Sequence, r.Heads))));
    }

    [Fact]
    public async Task ASpeakingRowComputesTheTextHeadOnlyUntilItsTextEnds()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), step == 1 ? Tokens.EndOfText : 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 4), CancellationToken.None));

        Assert.Equal([100, Tokens.EndOfText, Tokens.PadText, Tokens.PadText], steps.Select(s => s.Text));
        Assert.Equal([OutputHeadSet.TextAndAudio, OutputHeadSet.TextAndAudio, OutputHeadSet.Audio, OutputHeadSet.Audio], backbone.Decodes.Select(rows => Assert.Single(rows).Heads));
    }

    [Fact]
    public async Task TextAnswersComputeOnlyTheTextHead()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone);

        var steps = await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 3), CancellationToken.None));

        Assert.Equal([100, 101, 102], steps.Select(s => s.Text));
        Assert.All(backbone.Decodes, rows => Assert.Equal(OutputHeadSet.Text, Assert.Single(rows).Heads));
    }

    [Fact]
    public async Task AFailedDecodeFailsItsAnswersWithTheCauseAndFreesThem()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step)) { FailAtDecode = 3 };
        using var scheduler = Create(backbone);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 50), CancellationToken.None)));

        Assert.Contains("scripted failure", error.Message);
        backbone.Mock.Verify(b => b.RemoveSequence((LLamaSeqId)0), Times.Once);
        Assert.Equal(10, (await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 10), CancellationToken.None))).Count);
    }

    [Fact]
    public void AnAnswerThatCouldNeverFitTheCacheIsRefusedAtOnce()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, contextSize: 64);

        var error = Assert.Throws<ArgumentException>(() => scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 100), CancellationToken.None));

        Assert.Contains("cache", error.Message);
        Assert.Empty(backbone.Decodes);
    }

    [Fact]
    public async Task WorkPostedBetweenStepsRunsOnTheDecodingThreadWhileAnswersGoOn()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone);
        var steps = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 20), CancellationToken.None);
        var first = await steps.ReadAsync();

        int workThread = await scheduler.RunBetweenStepsAsync(() => Environment.CurrentManagedThreadId, CancellationToken.None);
        var rest = await ReadAll(steps);

        Assert.Equal(backbone.DecodeThread, workThread);
        Assert.Equal(Enumerable.Range(100, 20), new[] { first }.Concat(rest).Select(s => s.Text));
    }

    [Fact]
    public async Task WorkThatThrowsFailsItsCallerOnlyAndCancelledWorkNeverRuns()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        bool ran = false;

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => scheduler.RunBetweenStepsAsync<int>(() => throw new InvalidOperationException("codec failed"), CancellationToken.None));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => scheduler.RunBetweenStepsAsync(() => ran = true, cancelled.Token));

        Assert.Equal("codec failed", error.Message);
        Assert.False(ran);
        Assert.Equal(3, (await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 3), CancellationToken.None))).Count);
    }

    [Fact]
    public async Task WorkWaitingWhenTheSchedulerIsDisposedFailsInsteadOfHanging()
    {
        using var gate = new ManualResetEventSlim(false);
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step)) { Gate = gate };
        var scheduler = Create(backbone);
        var steps = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 50), CancellationToken.None);
        while (backbone.DecodeThread == 0)
        {
            await Task.Delay(5);
        }

        // Posted while a decode is under way, then the scheduler is disposed (posting is refused from then on) before that decode ends.
        var waiting = scheduler.RunBetweenStepsAsync(() => 1, CancellationToken.None);
        var disposing = Task.Run(scheduler.Dispose);
        while (Record.Exception(() => { _ = scheduler.RunBetweenStepsAsync(() => 0, CancellationToken.None); }) is not ObjectDisposedException)
        {
            await Task.Delay(5);
        }

        gate.Set();
        await disposing;

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => ReadAll(steps));
    }

    [Fact]
    public async Task EightAnswersWithoutBudgetsRunTogetherReservingTheCacheAsTheyGo()
    {
        // Each answer may take up to 400 steps (its whole budget would fill half the cache), and ends at step 30.
        var backbone = new ScriptedBackbone((_, step) => (step == 30 ? [.. Speech(5)[..6], Tokens.EndOfAudio] : Speech(5), 100 + step));
        var request = TextIn(MiniOmniTask.T1A2, maxSteps: 400);
        using var scheduler = Create(backbone, maxActiveAnswers: 8, contextSize: (uint)(2 * request.CacheCells + 8), sequences: 8);

        var answers = Enumerable.Range(0, 8).Select(_ => scheduler.Submit(request, CancellationToken.None)).ToList();
        var steps = await Task.WhenAll(answers.Select(ReadAll));

        Assert.All(steps, s => Assert.Equal(30, s.Count));
        Assert.All(answers, a => Assert.Equal(AnswerStopReason.EndOfAnswer, a.StopReason));
        Assert.Contains(backbone.Decodes, rows => rows.Select(r => r.Sequence).Distinct().Count() == 8);
        Assert.True(backbone.Decodes.Count <= 40, $"{backbone.Decodes.Count} decodes for eight answers of 30 steps");
    }

    [Fact]
    public async Task WhenTheCacheIsFullAnswersWaitAndIfAllMustTheLatestEndsWithTheContextAsItsReason()
    {
        // Three endless answers of up to 120 steps in a cache that holds about two of them.
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        var request = TextIn(MiniOmniTask.T1A2, maxSteps: 120);
        using var scheduler = Create(backbone, contextSize: (uint)(2 * request.CacheCells + 40), sequences: 8,
            options: new DecodeSchedulerOptions { MaxActiveAnswers = 3, ReserveSliceSteps = 16 });

        var answers = Enumerable.Range(0, 3).Select(_ => scheduler.Submit(request, CancellationToken.None)).ToList();
        var steps = await Task.WhenAll(answers.Select(ReadAll));

        // The first two reach their budget; the third, admitted alongside them, gives way once every answer waits for room.
        Assert.Equal([120, 120], steps[..2].Select(s => s.Count));
        Assert.Equal([AnswerStopReason.Budget, AnswerStopReason.Budget, AnswerStopReason.Context], answers.Select(a => a.StopReason));
        Assert.InRange(steps[2].Count, 1, 119);
        Assert.Contains(backbone.Decodes, rows => rows.Select(r => r.Sequence).Distinct().Count() == 3);
        Assert.Equal(1, scheduler.Statistics.ContextEnds);
        Assert.True(scheduler.Statistics.Pauses > 0);
    }

    [Fact]
    public async Task AnAnswerEndingAtTheModelsContextSaysSo()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone);

        var steps = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 5) with { StepLimitReason = AnswerStopReason.Context }, CancellationToken.None);
        var budgeted = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 5), CancellationToken.None);

        Assert.Equal(5, (await ReadAll(steps)).Count);
        Assert.Equal(5, (await ReadAll(budgeted)).Count);
        Assert.Equal(AnswerStopReason.Context, steps.StopReason);
        Assert.Equal(AnswerStopReason.Budget, budgeted.StopReason);
    }

    [Fact]
    public async Task ALongPromptIsDecodedInSlicesWhileAnotherAnswerSpeaks()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + (step % 1000)));
        // Nominal costs: 1 ms a prompt position, so 30 ms allows 30 positions a step.
        using var scheduler = Create(backbone, options: new DecodeSchedulerOptions { MaxPrefillPause = TimeSpan.FromMilliseconds(30) });
        var speaking = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 60), CancellationToken.None);
        await speaking.ReadAsync();

        var longPrompt = new GenerationRequest(MiniOmniTask.T1T2, new PromptBuilder(Vocabulary).ForText(MiniOmniTask.T1T2, [.. Enumerable.Range(11, 200)]), null, [], new SamplingOptions(), 5);
        var joining = scheduler.Submit(longPrompt, CancellationToken.None);
        Assert.Equal(5, (await ReadAll(joining)).Count);
        await ReadAll(speaking);

        var withPrompt = backbone.Batches.Where(rows => rows.Count(r => r.Sequence == 1) > 1).ToList();
        Assert.True(withPrompt.Count >= 7, $"the prompt of {longPrompt.Prompt.Length} positions went in {withPrompt.Count} decodes");
        Assert.All(withPrompt, rows => Assert.InRange(rows.Count(r => r.Sequence == 1), 1, 30));
        Assert.All(withPrompt, rows => Assert.Contains(rows, r => r.Sequence == 0)); // the speaking answer's step in each
    }

    [Fact]
    public async Task APromptDecodesWholeWhenNoOtherAnswerIsSpeaking()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, options: new DecodeSchedulerOptions { MaxPrefillPause = TimeSpan.FromMilliseconds(30) });
        var request = new GenerationRequest(MiniOmniTask.T1T2, new PromptBuilder(Vocabulary).ForText(MiniOmniTask.T1T2, [.. Enumerable.Range(11, 200)]), null, [], new SamplingOptions(), 3);

        Assert.Equal(3, (await ReadAll(scheduler.Submit(request, CancellationToken.None))).Count);

        Assert.Equal(request.Prompt.Length, backbone.Batches[0].Length);
    }

    [Fact]
    public async Task AnAnswerWhoseRowsCannotBeBuiltFailsAloneAndTheOthersGoOn()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone);
        // Audio features that are not whole rows of the embedding width: the embedding mix refuses them.
        var broken = TextIn(MiniOmniTask.T1A2, maxSteps: 10) with { AudioFeatures = new float[TokenTable.Width + 1] };

        var healthy = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 20), CancellationToken.None);
        var failing = scheduler.Submit(broken, CancellationToken.None);

        await Assert.ThrowsAsync<ArgumentException>(() => ReadAll(failing));
        Assert.Equal(20, (await ReadAll(healthy)).Count);
        Assert.Equal(4, (await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 4), CancellationToken.None))).Count);
    }

    [Fact]
    public async Task AnAnswerWhoseLogitsFailFailsAloneAndTheOthersGoOn()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step)) { FailLogitsOfSequence = 1 };
        using var scheduler = Create(backbone);

        var healthy = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 20), CancellationToken.None);
        var failing = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 20), CancellationToken.None);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ReadAll(failing));
        Assert.Contains("scripted logits failure", error.Message);
        Assert.Equal(20, (await ReadAll(healthy)).Count);
        backbone.Mock.Verify(b => b.RemoveSequence((LLamaSeqId)1), Times.Once);
    }

    [Fact]
    public async Task ACacheThatCannotBeFreedFaultsTheSchedulerWhichThenRefusesRequestsClearly()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), step == 3 ? Tokens.EndOfText : 100 + step));
        backbone.Mock.Setup(b => b.RemoveSequence((LLamaSeqId)0)).Throws(new InvalidOperationException("scripted cache failure"));
        using var scheduler = Create(backbone);

        var ending = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 50), CancellationToken.None); // sequence 0
        var other = scheduler.Submit(TextIn(MiniOmniTask.T1A2, maxSteps: 1000), CancellationToken.None);

        // The answer itself ended before its cache was to be freed; the one still running fails with the fault.
        Assert.Equal(3, (await ReadAll(ending)).Count);
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => ReadAll(other));
        Assert.Contains("load the model again", failure.Message);
        var refused = Assert.Throws<InvalidOperationException>(() => scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 5), CancellationToken.None));
        Assert.Contains("scripted cache failure", refused.Message);
        Assert.Contains("serves no more requests", refused.Message);
        await Assert.ThrowsAsync<InvalidOperationException>(() => scheduler.RunBetweenStepsAsync(() => 1, CancellationToken.None));
    }

    [Fact]
    public void ABackboneThatCannotBeMeasuredFaultsTheSchedulerBeforeAnyAnswer()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        backbone.Mock.Setup(b => b.MeasureNextCost()).Throws(new InvalidOperationException("scripted calibration failure"));
        using var scheduler = Create(backbone);

        var refused = Assert.Throws<InvalidOperationException>(() =>
        {
            for (var clock = System.Diagnostics.Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(10); Thread.Sleep(5))
            {
                scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 5), CancellationToken.None);
            }
        });

        Assert.Contains("scripted calibration failure", refused.Message);
        Assert.Empty(backbone.Decodes);
    }

    [Fact]
    public async Task APromptThatStartsWithAKeptPreambleDecodesOnlyTheRest()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, sideSequences: 4, options: new DecodeSchedulerOptions { PromptCacheCells = 100 });
        int[] history = [.. Enumerable.Range(20, 12)];

        await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 3, history), CancellationToken.None));
        int before = backbone.Batches.Count;
        var next = TextIn(MiniOmniTask.T1T2, maxSteps: 3, [.. history, 40, 41, 42]);
        await ReadAll(scheduler.Submit(next, CancellationToken.None));

        // 12 positions shared from the kept preamble (side sequence 9), the other 8 of the prompt decoded, then 2 fed-back steps.
        var rows = backbone.Batches.Skip(before).SelectMany(b => b).ToList();
        Assert.Equal(next.Prompt.Length - 12 + 2, rows.Count);
        Assert.Equal(12, rows.Min(r => r.Position));
        backbone.Mock.Verify(b => b.CopySequence((LLamaSeqId)0, (LLamaSeqId)9, 0, 12), Times.Once);
        backbone.Mock.Verify(b => b.CopySequence((LLamaSeqId)9, (LLamaSeqId)0, 0, 12), Times.Once);
        Assert.Equal(12, scheduler.ReusedPromptPositions);
        // The longer preamble replaced the one it extends.
        Assert.Equal([15], scheduler.CachedPrefixLengths());
    }

    [Fact]
    public async Task ThePromptCacheKeepsAtMostItsSizeAndEvictsTheLeastRecentlyUsed()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, sideSequences: 8, options: new DecodeSchedulerOptions { PromptCacheCells = 30 });
        int[] a = [.. Enumerable.Range(20, 12)], b = [.. Enumerable.Range(40, 12)], c = [.. Enumerable.Range(60, 12)];
        async Task<long> Reused(int[] preamble)
        {
            long before = scheduler.ReusedPromptPositions;
            await ReadAll(scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 2, preamble), CancellationToken.None));
            return scheduler.ReusedPromptPositions - before;
        }

        Assert.Equal(0, await Reused(a));
        Assert.Equal(0, await Reused(b));
        Assert.Equal(12, await Reused(a)); // a is now the most recently used
        Assert.Equal(0, await Reused(c)); // 36 cells do not fit 30: b, the least recently used, goes

        Assert.Equal(24, scheduler.CachedPrefixCells);
        Assert.Equal(12, await Reused(a));
        Assert.Equal(0, await Reused(b));
        Assert.InRange(scheduler.CachedPrefixCells, 0, 30);
    }

    [Fact]
    public async Task ARowBesideAnAnswerSharesItsPromptAndItsSteps()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, sideSequences: 4);
        var answer = TextIn(MiniOmniTask.T1T2, maxSteps: 6, [.. Enumerable.Range(20, 10)]);
        var beside = answer with { MaxSteps = 6 };

        var answerSteps = scheduler.Submit(answer, CancellationToken.None);
        var besideSteps = scheduler.SubmitBeside(beside, answerSteps, beside.Prompt.Length - 1, CancellationToken.None);
        await Task.WhenAll(ReadAll(answerSteps), ReadAll(besideSteps));

        // Its prompt is the answer's but for the last position, the only one it decodes, on side sequence 9.
        backbone.Mock.Verify(b => b.CopySequence((LLamaSeqId)0, (LLamaSeqId)9, 0, beside.Prompt.Length - 1), Times.Once);
        var rows = backbone.Batches.SelectMany(b => b).Where(r => r.Sequence == 9).ToList();
        Assert.Equal(1 + 5, rows.Count);
        Assert.Equal(beside.Prompt.Length - 1, rows.Min(r => r.Position));
        // Its steps go in the same decodes as the answer's.
        Assert.True(backbone.Batches.Count(batch => batch.Any(r => r.Sequence == 0) && batch.Any(r => r.Sequence == 9)) >= 5);
    }

    [Fact]
    public async Task ARowBesideAnswersNeverHoldsUpTheNextAnswer()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, maxActiveAnswers: 1, sideSequences: 2);
        var first = TextIn(MiniOmniTask.T1T2, maxSteps: 3);

        var firstSteps = scheduler.Submit(first, CancellationToken.None);
        var slow = scheduler.SubmitBeside(first with { MaxSteps = 300 }, firstSteps, first.Prompt.Length - 1, CancellationToken.None);
        var nextSteps = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 3), CancellationToken.None);
        Assert.Equal(3, (await ReadAll(nextSteps)).Count);
        Assert.Equal(300, (await ReadAll(slow)).Count);

        // The next answer (sequence 0 again, once the first ended) ran while the slow row (side sequence 9) still did.
        int nextStarted = backbone.Batches.FindLastIndex(batch => batch.Any(r => r.Sequence == 0 && r.Position == 0));
        int slowEnded = backbone.Batches.FindLastIndex(batch => batch.Any(r => r.Sequence == 9));
        Assert.True(nextStarted < slowEnded, $"the next answer started at decode {nextStarted}, the slow row ended at {slowEnded}");
    }

    [Fact]
    public async Task APreambleKeptAheadIsDecodedWithoutHeadsAndTheNextPromptDecodesOnlyWhatFollowsIt()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, sideSequences: 4, options: new DecodeSchedulerOptions { PromptCacheCells = 100 });
        int[] history = [.. Enumerable.Range(20, 12)];

        Assert.Equal(12, await scheduler.KeepAhead(KeepAhead(history), CancellationToken.None));
        var ahead = backbone.Batches.SelectMany(b => b).ToList();
        Assert.Equal(Enumerable.Range(0, 12), ahead.Select(r => r.Position));
        Assert.DoesNotContain(ahead, r => r.WantsLogits);
        Assert.Equal([12], scheduler.CachedPrefixLengths());

        // The same preamble again decodes nothing; one that extends it decodes only what it adds.
        Assert.Equal(0, await scheduler.KeepAhead(KeepAhead(history), CancellationToken.None));
        Assert.Equal(3, await scheduler.KeepAhead(KeepAhead([.. history, 32, 33, 34]), CancellationToken.None));
        Assert.Equal([15], scheduler.CachedPrefixLengths());

        int before = backbone.Batches.Count;
        var next = TextIn(MiniOmniTask.T1T2, maxSteps: 3, [.. history, 32, 33, 34]);
        Assert.Equal(3, (await ReadAll(scheduler.Submit(next, CancellationToken.None))).Count);
        var rows = backbone.Batches.Skip(before).SelectMany(b => b).ToList();
        Assert.Equal(next.Prompt.Length - 15 + 2, rows.Count);
        Assert.Equal(15, rows.Min(r => r.Position));
    }

    [Fact]
    public async Task APreambleKeptAheadWaitsWhileAnAnswerRunsThenDecodesWholeAfterIt()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, sideSequences: 4, options: new DecodeSchedulerOptions { PromptCacheCells = 100 });
        var answer = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 20), CancellationToken.None);
        var ahead = scheduler.KeepAhead(KeepAhead([.. Enumerable.Range(20, 12)]), CancellationToken.None);
        Assert.Equal(20, (await ReadAll(answer)).Count);
        Assert.Equal(12, await ahead);

        // Not one of its rows shared a decode with the answer's (sequence 0): it waited for the answer to end.
        int answerEnded = backbone.Batches.FindLastIndex(b => b.Any(r => r.Sequence == 0));
        int aheadStarted = backbone.Batches.FindIndex(b => b.Any(r => r.Sequence != 0));
        Assert.True(aheadStarted > answerEnded, $"the preamble started at decode {aheadStarted}, the answer ended at {answerEnded}");
    }

    [Fact]
    public async Task APreambleAheadStoppedWhileAnAnswerRunsEndsCancelledHavingDecodedNothing()
    {
        using var gate = new ManualResetEventSlim();
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step)) { Gate = gate };
        using var scheduler = Create(backbone, sideSequences: 4, options: new DecodeSchedulerOptions { PromptCacheCells = 100 });
        using var stop = new CancellationTokenSource();
        var answer = scheduler.Submit(TextIn(MiniOmniTask.T1T2, maxSteps: 20), CancellationToken.None);
        var stopped = scheduler.KeepAhead(KeepAhead([.. Enumerable.Range(50, 12)]), stop.Token);
        await stop.CancelAsync();
        gate.Set();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stopped);
        Assert.Equal(20, (await ReadAll(answer)).Count);
        Assert.All(backbone.Batches.SelectMany(b => b), r => Assert.Equal(0, r.Sequence));
        Assert.Empty(scheduler.CachedPrefixLengths());
    }

    [Fact]
    public async Task OnlyAPreambleToKeepIsDecodedAheadAndOneTheCacheCannotKeepIsNotDecoded()
    {
        var backbone = new ScriptedBackbone((_, step) => (Speech(5), 100 + step));
        using var scheduler = Create(backbone, sideSequences: 4, options: new DecodeSchedulerOptions { PromptCacheCells = 20 });
        await Assert.ThrowsAsync<ArgumentException>(() => scheduler.KeepAhead(TextIn(MiniOmniTask.T1T2, maxSteps: 3), CancellationToken.None));
        Assert.Equal(0, await scheduler.KeepAhead(KeepAhead([.. Enumerable.Range(20, 30)]), CancellationToken.None));
        Assert.Equal(0, await scheduler.KeepAhead(KeepAhead([20, 21]), CancellationToken.None));
        Assert.Empty(backbone.Batches);
    }

    [Fact]
    public async Task APreambleAheadGivesItsCellsUpToAnAnswerThatNeedsThemKeepingNothing()
    {
        var first = TextIn(MiniOmniTask.T1T2, maxSteps: 40);
        var second = TextIn(MiniOmniTask.T1T2, maxSteps: 10);
        var ahead = KeepAhead([.. Enumerable.Range(20, 30)]);
        var secondSteps = new TaskCompletionSource<AnswerSteps>(TaskCreationOptions.RunContinuationsAsynchronously);
        DecodeScheduler? scheduler = null;
        using var gate = new ManualResetEventSlim();
        // The second answer comes at the first one's third step, by when the preamble waiting beside it holds its cells
        // (both were queued before any decode could end).
        var backbone = new ScriptedBackbone((sequence, step) =>
        {
            if (sequence == 0 && step == 2 && !secondSteps.Task.IsCompleted)
            {
                secondSteps.SetResult(scheduler!.Submit(second, CancellationToken.None));
            }

            return (Speech(5), 100 + step);
        })
        { Gate = gate };
        // Room for the first answer and the preamble's reservation (its 30 positions and one), not for the second answer too.
        long cells = first.CacheCells + ahead.CacheCells + second.CacheCells - 1;
        using var created = Create(backbone, contextSize: (uint)(cells + 8), sideSequences: 4, options: new DecodeSchedulerOptions { PromptCacheCells = 40 });
        scheduler = created;

        var firstSteps = scheduler.Submit(first, CancellationToken.None);
        var waiting = scheduler.KeepAhead(ahead, CancellationToken.None);
        gate.Set();

        Assert.Equal(40, (await ReadAll(firstSteps)).Count);
        Assert.Equal(10, (await ReadAll(await secondSteps.Task)).Count);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Empty(scheduler.CachedPrefixLengths());
        Assert.Equal(0, scheduler.Statistics.ContextEnds);
    }

    private static GenerationRequest KeepAhead(int[] preamble) =>
        new(MiniOmniTask.T1T2, new PromptBuilder(Vocabulary).ForPreamble(preamble), null, [], new SamplingOptions(), 1) { KeepsPromptOnly = true };

    private static int[] Speech(int code) => [.. Enumerable.Repeat(code, 7)];

    private static GenerationRequest TextIn(MiniOmniTask task, int maxSteps, int[]? preamble = null) =>
        new(task, new PromptBuilder(Vocabulary).ForText(task, [11, 12, 13], preamble), null, [], new SamplingOptions(), maxSteps);

    private DecodeScheduler Create(ScriptedBackbone backbone, int maxActiveAnswers = 4, uint contextSize = 4096, uint sequences = 8, DecodeSchedulerOptions? options = null, uint sideSequences = 0)
    {
        backbone.Mock.SetupGet(b => b.Options).Returns(new BackboneOptions { ContextSize = contextSize, MaxSequences = sequences, BatchSize = 512, SideSequences = sideSequences });
        return new DecodeScheduler(backbone.Mock.Object, _table.Mix, Vocabulary, options ?? new DecodeSchedulerOptions { MaxActiveAnswers = maxActiveAnswers }, NullLogger.Instance);
    }

    private static async Task<List<StepTokens>> ReadAll(ChannelReader<StepTokens> steps)
    {
        var all = new List<StepTokens>();
        await foreach (var step in steps.ReadAllAsync())
        {
            all.Add(step);
        }

        return all;
    }

    /// <summary>
    /// A Moq backbone whose logits follow a script of (sequence, step) -> (audio codes, text token), the step counted per
    /// sequence from its first logits row. Every decode's logits rows are recorded.
    /// </summary>
    private sealed class ScriptedBackbone
    {
        private readonly Func<int, int, (int[] Audio, int Text)> _script;
        private readonly ConcurrentDictionary<int, int> _stepOfSequence = new();
        private RowLogits[] _logits = [];
        private readonly HashSet<int> _failing = [];

        public ScriptedBackbone(Func<int, int, (int[] Audio, int Text)> script)
        {
            _script = script;
            Mock.SetupGet(b => b.EmbeddingLength).Returns(TokenTable.Width);
            Mock.Setup(b => b.Decode(It.IsAny<BackboneBatch>())).Callback<BackboneBatch>(OnDecode);
            Mock.Setup(b => b.Logits(It.IsAny<int>())).Returns<int>(index => _failing.Contains(index) ? throw new InvalidOperationException("scripted logits failure") : _logits[index]);
            // Finite hidden states: the scripted answers never turn NaN.
            Mock.Setup(b => b.HiddenState(It.IsAny<int>())).Returns(new ReadOnlyMemory<float>(new float[TokenTable.Width]));
            Mock.Setup(b => b.CopySequence(It.IsAny<LLamaSeqId>(), It.IsAny<LLamaSeqId>(), It.IsAny<int>(), It.IsAny<int>()));
            Mock.Setup(b => b.RemoveSequence(It.IsAny<LLamaSeqId>()));
            Mock.Setup(b => b.MeasureNextCost()).Returns(false);
            Mock.SetupGet(b => b.Costs).Returns(DecodeCosts.Nominal(8));
            Mock.SetupGet(b => b.HeadsTime).Returns(TimeSpan.Zero);
        }

        public Mock<IBackbone> Mock { get; } = new(MockBehavior.Strict);

        public List<(int Sequence, int Index, OutputHeadSet Heads)[]> Decodes { get; } = [];

        /// <summary>Every position of every decode (what <see cref="Decodes"/> leaves out: the prompt positions that want no logits).</summary>
        public List<BackboneRow[]> Batches { get; } = [];

        /// <summary>A sequence whose logits throw when read.</summary>
        public int? FailLogitsOfSequence { get; init; }

        public ManualResetEventSlim? Gate { get; init; }

        /// <summary>The managed id of the thread the last decode ran on (0 before any).</summary>
        public int DecodeThread { get; private set; }

        public int? FailAtDecode { get; init; }

        private void OnDecode(BackboneBatch batch)
        {
            DecodeThread = Environment.CurrentManagedThreadId;
            Gate?.Wait();
            if (Decodes.Count + 1 == FailAtDecode)
            {
                Decodes.Add([]);
                throw new InvalidOperationException("scripted failure");
            }

            var logitRows = batch.Rows.Select((row, index) => (row, index)).Where(r => r.row.WantsLogits).Select(r => (r.row.Sequence, Index: r.index, r.row.Heads)).ToArray();
            Decodes.Add(logitRows);
            Batches.Add([.. batch.Rows]);
            _logits = new RowLogits[batch.EmbeddingsCount];
            _failing.Clear();
            _failing.UnionWith(logitRows.Where(r => r.Sequence == FailLogitsOfSequence).Select(r => r.Index));
            foreach (var (sequence, index, heads) in logitRows)
            {
                int step = _stepOfSequence.AddOrUpdate(sequence, 0, (_, s) => s + 1);
                var (audio, text) = _script(sequence, step);
                var logits = new float[Vocabulary.RowCount];
                logits[text] = 1;
                for (int layer = 0; layer < audio.Length; layer++)
                {
                    logits[Vocabulary.AudioRow(layer, audio[layer])] = 1;
                }

                // Only the rows of the heads asked for, as the real heads compute them: reading any other is an error.
                int first = heads.HasFlag(OutputHeadSet.Text) ? 0 : Vocabulary.TextVocabularySize;
                int end = heads.HasFlag(OutputHeadSet.Audio) ? Vocabulary.RowCount : Vocabulary.TextVocabularySize;
                _logits[index] = new RowLogits(first, logits.AsMemory(first, end - first));
            }
        }
    }

    /// <summary>A narrow token table in a real GGUF, for the embedding mix the scheduler feeds.</summary>
    public sealed class TokenTable : IDisposable
    {
        public const int Width = 4;
        private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();
        private readonly GgufFile _file;

        public TokenTable()
        {
            string path = Path.Combine(_directory.Path, "tokens.gguf");
            new GgufWriter()
                .AddTensor("token_embd.weight", [Width, Vocabulary.RowCount], GgmlType.F32, () => [.. Enumerable.Range(0, Width * Vocabulary.RowCount).Select(i => (i % 97) / 97f)])
                .WriteTo(path);
            _file = GgufFile.Open(path);
            Mix = new EmbeddingMix(_file);
        }

        internal EmbeddingMix Mix { get; }

        public void Dispose()
        {
            _file.Dispose();
            _directory.Dispose();
        }
    }
}
