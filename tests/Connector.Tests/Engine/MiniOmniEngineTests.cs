using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>The engine end to end on the fixture model: WAV in, the reference's tokens and speech out.</summary>
public sealed class MiniOmniEngineTests(EngineFixture fixture, ITestOutputHelper output) : IClassFixture<EngineFixture>
{
    private const int ReferenceSteps = 97; // max_returned_tokens 160 - prompt 63

    [Fact]
    public async Task SpeechInGivesTheReferenceTokensAndSpeech()
    {
        var events = await Collect(new MiniOmniRequest { Audio = fixture.Question, MaxTokens = ReferenceSteps });

        var completed = Assert.IsType<AnswerCompleted>(events[^1]);
        var expected = GoldenTasks.AudioLayers("A1A2");
        for (int layer = 0; layer < 7; layer++)
        {
            Assert.Equal(expected[layer], completed.Tokens[layer]);
        }

        Assert.Equal(GoldenTasks.ReadIds(GoldenTasks.Task("A1A2").GetProperty("output")[7]), completed.Tokens[7]);
        float[] speech = [.. events.OfType<SpeechChunk>().SelectMany(c => c.Samples)];
        float[] reference = Fixture.ReadFloats("A1A2.wav.f32");
        Assert.Equal(reference.Length, speech.Length);
        double signal = reference.Sum(v => (double)v * v), noise = reference.Zip(speech, (a, b) => ((double)a - b) * (a - b)).Sum();
        double snr = 10 * Math.Log10(signal / noise);
        output.WriteLine($"streamed speech vs the reference waveform: {snr:F1} dB; first speech after {completed.TimeToFirstSpeech?.TotalMilliseconds:F0} ms");
        Assert.True(snr > 45, $"{snr:F1} dB");
        Assert.All(events.OfType<SpeechChunk>(), c => Assert.Equal(24000, c.SampleRate));
        Assert.Equal(reference.Length / 24000.0, completed.SpeechSeconds, 3);
    }

    [Fact]
    public async Task TextInGivesTheReferenceTextTokens()
    {
        var reference = GoldenTasks.Task("T1T2_1");

        var events = await Collect(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = reference.GetProperty("text").GetString(), MaxTokens = 148 });

        var completed = Assert.IsType<AnswerCompleted>(events[^1]);
        Assert.Equal(GoldenTasks.ReadIds(reference.GetProperty("output")), completed.Tokens[7]);
        Assert.Empty(events.OfType<SpeechChunk>());
        Assert.Equal(12, completed.PromptTokens);
    }

    [Fact]
    public async Task ACancelledAnswerStopsAndTheNextAnswerIsUnaffected()
    {
        var request = new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = fixture.Question, MaxTokens = ReferenceSteps };
        using var cancellation = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in fixture.Engine.GenerateAsync(request with { Task = MiniOmniTask.A1A2 }, cancellation.Token))
            {
                cancellation.Cancel();
            }
        });

        var after = Assert.IsType<AnswerCompleted>((await Collect(request))[^1]);
        Assert.Equal(GoldenTasks.ReadIds(GoldenTasks.Task("A1T2").GetProperty("output")), after.Tokens[7]);
    }

    [Fact]
    public async Task ACallerThatStopsReadingEndsItsAnswerInsteadOfLeavingItToRunToItsBudget()
    {
        const int Budget = 900;
        var before = fixture.Engine.DecodeStatistics;

        await foreach (var item in fixture.Engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = fixture.Question, MaxTokens = Budget }))
        {
            break;
        }

        // The answer leaves the batch at its next step: the decode count settles at a handful. Left running, this
        // answer decodes 264 times before the fixture's model ends its text.
        long decodes = -1;
        while (fixture.Engine.DecodeStatistics.Decodes != decodes)
        {
            decodes = fixture.Engine.DecodeStatistics.Decodes;
            await Task.Delay(300);
        }

        long steps = fixture.Engine.DecodeStatistics.Since(before).Decodes;
        output.WriteLine($"{steps} decodes after the reader stopped, of a {Budget}-step budget");
        Assert.InRange(steps, 1, 100);
    }

    [Fact]
    public async Task ConcurrentAnswersEachMatchTheirSoloRun()
    {
        var requests = new[]
        {
            new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = fixture.Question, MaxTokens = 40 },
            new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "How do you make a cup of tea?", MaxTokens = 40 },
            new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "What is your name?", MaxTokens = 40 },
            new MiniOmniRequest { Task = MiniOmniTask.A1A2, Audio = fixture.Question, MaxTokens = 40, BatchParallel = true },
        };
        var solo = new List<IReadOnlyList<IReadOnlyList<int>>>();
        foreach (var request in requests)
        {
            solo.Add(((AnswerCompleted)(await Collect(request))[^1]).Tokens);
        }

        var together = await Task.WhenAll(requests.Select(r => Task.Run(() => Collect(r))));

        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(solo[i], ((AnswerCompleted)together[i][^1]).Tokens);
        }
    }

    [Fact]
    public async Task APreambleGoesOnTheTextStreamAheadOfTheReleasedPrompt()
    {
        var request = new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "What is your name?", MaxTokens = 8 };

        var plain = Assert.IsType<AnswerCompleted>((await Collect(request))[^1]);
        var withPreamble = Assert.IsType<AnswerCompleted>((await Collect(request with { Preamble = "You are a helpful assistant." }))[^1]);

        Assert.Equal(plain.PromptTokens + 6, withPreamble.PromptTokens);
        Assert.Equal(fixture.Engine.ModelId, Path.GetFileName(Path.TrimEndingDirectorySeparator(fixture.ModelPath)));
    }

    [Fact]
    public async Task DisposingTheEngineMidAnswerEndsTheAnswerWithObjectDisposedExceptionNotACrash()
    {
        var engine = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2 });
        var tasks = new[] { MiniOmniTask.A1A2, MiniOmniTask.A1T2 };
        // Each answer is held by the engine itself after the first step that hands out text or speech, so it cannot end
        // (however short the tiny model's answer is) before the dispose: the answers are mid-way, deterministically.
        int held = 0;
        var bothHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        engine.AfterAnswerEvent = () =>
        {
            if (Interlocked.Increment(ref held) == tasks.Length)
            {
                bothHeld.TrySetResult();
            }

            return release.Task;
        };
        var seen = tasks.Select(_ => new System.Collections.Concurrent.ConcurrentQueue<MiniOmniEvent>()).ToArray();
        var answers = tasks.Select((task, i) => Task.Run(async () =>
        {
            await foreach (var item in engine.GenerateAsync(new MiniOmniRequest { Task = task, Audio = fixture.Question, MaxTokens = 500 }))
            {
                seen[i].Enqueue(item);
            }
        })).ToArray();
        await Task.WhenAny(bothHeld.Task, Task.WhenAll(answers)).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(bothHeld.Task.IsCompleted, "an answer ended before it began to speak or write");

        engine.Dispose();
        release.SetResult();

        // The defined end of an answer the engine was disposed under: ObjectDisposedException, never a completion (half an
        // answer passed off as whole), never another error, and the process lives on.
        for (int i = 0; i < answers.Length; i++)
        {
            var error = await Record.ExceptionAsync(() => answers[i].WaitAsync(TimeSpan.FromMinutes(2)));
            Assert.True(error is ObjectDisposedException, $"{tasks[i]}: {error?.GetType().Name ?? "no error"}: {error?.Message}");
            Assert.Contains(seen[i], e => e is SpeechChunk or TextDelta);
            Assert.DoesNotContain(seen[i], e => e is AnswerCompleted);
        }

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi" }).GetAsyncEnumerator().MoveNextAsync());
        engine.Dispose();
    }

    [Fact]
    public async Task DisposingTheEngineDuringAnEncodeWaitsForItBeforeFreeingTheEncoder()
    {
        var engine = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2 });
        var encoding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var release = new ManualResetEventSlim();
        Task? disposing = null;
        bool disposedBeforeTheEncodeEnded = false;
        Exception? encodeError = null;
        engine.RunEncode = encode =>
        {
            // Held on the encoder's thread, in flight, until the test has begun the dispose.
            encoding.TrySetResult();
            release.Wait();
            try
            {
                var encoded = encode();
                disposedBeforeTheEncodeEnded = disposing!.IsCompleted;
                return encoded;
            }
            catch (Exception e)
            {
                // Without the wait, the encoder's weights were freed under this encode (GgmlStage refuses the run).
                encodeError = e;
                throw;
            }
        };
        var answer = Task.Run(async () =>
        {
            await foreach (var item in engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = fixture.Question, MaxTokens = 20 }))
            {
                _ = item;
            }
        });
        await encoding.Task.WaitAsync(TimeSpan.FromMinutes(2));

        disposing = Task.Run(engine.Dispose);
        // A dispose that does not wait frees the encoder at once; one that waits is still blocked when the encode resumes.
        await Task.WhenAny(disposing, Task.Delay(TimeSpan.FromSeconds(1)));
        bool disposeReturnedUnderTheEncode = disposing.IsCompleted;
        release.Set();
        await disposing.WaitAsync(TimeSpan.FromMinutes(2));
        var error = await Record.ExceptionAsync(() => answer.WaitAsync(TimeSpan.FromMinutes(2)));

        Assert.False(disposeReturnedUnderTheEncode, "Dispose returned while an encode was in flight");
        Assert.Null(encodeError);
        Assert.False(disposedBeforeTheEncodeEnded, "the encoder was freed before the encode in flight ended");
        // The answer whose question was encoded meets the disposed engine next, and ends as every disposed answer does.
        Assert.True(error is ObjectDisposedException, $"{error?.GetType().Name ?? "no error"}: {error?.Message}");
    }

    [Fact]
    public async Task BadRequestsAreRefusedBeforeAnyWork()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.A1A2 }));
        await Assert.ThrowsAsync<ArgumentException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = " " }));
        await Assert.ThrowsAsync<ArgumentException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", BatchParallel = true }));
        await Assert.ThrowsAsync<ArgumentException>(() => Collect(new MiniOmniRequest { Audio = new float[31 * 16000] }));
        var tooLong = await Assert.ThrowsAsync<ContextOverflowException>(() => Collect(new MiniOmniRequest { Audio = fixture.Question, MaxTokens = 100_000 }));
        Assert.Contains("context", tooLong.Message);
        Assert.Equal((63, 100_000), (tooLong.PromptPositions, tooLong.Steps));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Collect(new MiniOmniRequest { Audio = fixture.Question, Sampling = new SamplingOptions { TopP = 2 } }));
    }

    [Fact]
    public async Task BudgetsThatAreNegativeOrWouldOverflowTheFitCheckAreRefused()
    {
        long decodes = fixture.Engine.DecodeStatistics.Decodes;

        var negative = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", MaxTokens = -1 }));
        var huge = await Assert.ThrowsAsync<ContextOverflowException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", MaxTokens = int.MaxValue }));
        var batchHuge = await Assert.ThrowsAsync<ContextOverflowException>(() => Collect(new MiniOmniRequest { Audio = fixture.Question, BatchParallel = true, MaxTokens = int.MaxValue / 2 + 1 }));

        Assert.Contains("MaxTokens must be 0", negative.Message);
        Assert.Contains("does not fit", huge.Message);
        Assert.Equal(int.MaxValue, huge.Steps);
        Assert.Contains("does not fit", batchHuge.Message);
        Assert.Equal(decodes, fixture.Engine.DecodeStatistics.Decodes);
    }

    [Fact]
    public async Task AnswersWithoutABudgetTakeTheEnginesDefaultAndRunTogether()
    {
        // Eight text answers without budgets: each takes the default (30 steps), and all eight run at once.
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2, MaxConcurrentAnswers = 8, DefaultMaxTokens = 30 });
        var before = engine.DecodeStatistics;

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            AnswerCompleted? completed = null;
            await foreach (var item in engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = $"Question number {i}?" }))
            {
                completed = item as AnswerCompleted ?? completed;
            }

            return completed!;
        })));

        var used = engine.DecodeStatistics.Since(before);
        Assert.All(answers, a => Assert.InRange(a.Steps, 1, 30));
        // Run one after another they would take a decode per step each; together, about one decode per step for all.
        Assert.True(used.Decodes < answers.Sum(a => a.Steps) / 2, $"{used.Decodes} decodes for {answers.Sum(a => a.Steps)} steps");
    }

    private async Task<List<MiniOmniEvent>> Collect(MiniOmniRequest request)
    {
        var events = new List<MiniOmniEvent>();
        await foreach (var item in fixture.Engine.GenerateAsync(request))
        {
            events.Add(item);
        }

        return events;
    }
}

/// <summary>One engine over the converted fixture, shared by the engine tests.</summary>
public sealed class EngineFixture : IDisposable
{
    private readonly ConvertedFixtureModel _model = new();

    public EngineFixture()
    {
        // The default budget keeps the answers without one (which random weights never end) short, and all of them together within the cache.
        Engine = MiniOmniEngine.Load(_model.Model.Path, new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2, FullPrecisionCache = true, DefaultMaxTokens = 160 });
        Question = AudioDecoder.DecodeFile(Fixture.Question);
    }

    public MiniOmniEngine Engine { get; }

    public string ModelPath => _model.Model.Path;

    public float[] Question { get; }

    public void Dispose()
    {
        Engine.Dispose();
        _model.Dispose();
    }
}
