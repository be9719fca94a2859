using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// What the engine decodes once instead of twice, on the fixture model with an f32 cache: a question's transcript beside
/// its answer (one encoding, the answer's prompt shared), and a preamble kept for the next turn of a conversation. Each
/// gives the tokens a fresh, separate decode gives.
/// </summary>
public sealed class PromptSharingTests(EngineFixture fixture, ITestOutputHelper output) : IClassFixture<EngineFixture>
{
    [Fact]
    public async Task ATranscriptBesideItsAnswerEncodesTheQuestionOnceAndEqualsATranscriptionOfItsOwn()
    {
        const string preamble = "User: good morning\nAssistant: hello there\n";
        var request = new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = fixture.Question, Preamble = preamble, MaxTokens = 24 };
        var alone = Completed(await Collect(request));
        var ownTranscription = Completed(await Collect(request with { Task = MiniOmniTask.Asr, MaxTokens = 30 }));

        long encodedBefore = fixture.Engine.QuestionsEncoded;
        var transcription = new QuestionTranscription(maxTokens: 30);
        var answer = Collect(request with { Transcription = transcription });
        var transcript = CollectAll(transcription.ReadAllAsync());
        var both = await Task.WhenAll(answer, transcript);

        Assert.Equal(1, fixture.Engine.QuestionsEncoded - encodedBefore);
        Assert.True(transcription.Started);
        var beside = Completed(both[1]);
        output.WriteLine($"transcript beside: {beside.Steps} steps; its own: {ownTranscription.Steps} steps");
        Assert.Equal(ownTranscription.Tokens[7], beside.Tokens[7]);
        Assert.Equal(ownTranscription.PromptTokens, beside.PromptTokens);
        Assert.Equal(string.Concat(both[1].OfType<TextDelta>().Select(d => d.Text)), string.Concat((await Collect(request with { Task = MiniOmniTask.Asr, MaxTokens = 30 })).OfType<TextDelta>().Select(d => d.Text)));
        // The answer beside a transcript is the answer alone.
        Assert.Equal(alone.Tokens[7], Completed(both[0]).Tokens[7]);
    }

    [Fact]
    public async Task ATranscriptionForAnAnswerThatCannotTakeItIsRefusedAndLeftToItsAsker()
    {
        var transcription = new QuestionTranscription();

        await Assert.ThrowsAsync<ArgumentException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", Transcription = transcription }));

        Assert.False(transcription.Started);
        Assert.True(transcription.TryAbandon());
        await Assert.ThrowsAsync<QuestionTranscriptionAbandonedException>(() => CollectAll(transcription.ReadAllAsync()));
    }

    [Fact]
    public async Task ANextTurnDecodesOnlyWhatItsPreambleAddsAndGivesTheTokensOfAFreshPrefill()
    {
        const string history = "System: answer briefly and kindly\nUser: what is the weather like today\nAssistant: it is sunny and warm\n";
        const string added = "User: and tomorrow\nAssistant: rain in the afternoon\n";
        var first = new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "thank you", Preamble = history, MaxTokens = 12 };
        var next = first with { Preamble = history + added, Text = "should I take an umbrella" };
        // Two engines that differ only in the prompt cache, their steps decoded alike (the measured split into decodes
        // depends on the machine's load when it was measured, and changes the rounding).
        var options = new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2, FullPrecisionCache = true, DefaultMaxTokens = 160, StepDecodePolicy = StepDecodePolicy.Together };
        using var cached = MiniOmniEngine.Load(fixture.ModelPath, options);
        using var fresh = MiniOmniEngine.Load(fixture.ModelPath, options with { PromptCacheSize = 0 });

        await CollectAll(cached.GenerateAsync(first));
        long reusedBefore = cached.Scheduler.ReusedPromptPositions, rowsBefore = cached.DecodeStatistics.Rows;
        var reused = Completed(await CollectAll(cached.GenerateAsync(next)));
        long reusedPositions = cached.Scheduler.ReusedPromptPositions - reusedBefore, rows = cached.DecodeStatistics.Rows - rowsBefore;
        var freshAnswer = Completed(await CollectAll(fresh.GenerateAsync(next)));
        long freshRows = fresh.DecodeStatistics.Rows;
        output.WriteLine($"prompt {reused.PromptTokens} positions: {reusedPositions} shared, {rows} rows decoded (fresh: {freshRows})");

        // The earlier turn's whole preamble is shared: only what the new preamble adds, the question and the steps are decoded.
        int historyPositions = Completed(await CollectAll(fresh.GenerateAsync(first with { MaxTokens = 1 }))).PromptTokens - Completed(await CollectAll(fresh.GenerateAsync(first with { Preamble = null, MaxTokens = 1 }))).PromptTokens;
        Assert.InRange(reusedPositions, historyPositions - 1, historyPositions);
        Assert.Equal(freshAnswer.Tokens[7], reused.Tokens[7]);
        Assert.Equal(freshRows - reusedPositions, rows);
    }

    [Fact]
    public async Task APreambleDecodedAheadLeavesItsAnswerOnlyTheQuestionAndGivesTheTokensOfAFreshPrefill()
    {
        const string history = "System: answer briefly and kindly\nUser: what is the weather like today\nAssistant: it is sunny and warm\n";
        var request = new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "should I take an umbrella", Preamble = history, MaxTokens = 12 };
        var options = new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2, FullPrecisionCache = true, DefaultMaxTokens = 160, StepDecodePolicy = StepDecodePolicy.Together };
        using var cached = MiniOmniEngine.Load(fixture.ModelPath, options);
        using var fresh = MiniOmniEngine.Load(fixture.ModelPath, options with { PromptCacheSize = 0 });
        int preamblePositions = cached.TokenizeText(history).Length;

        await cached.PrefillPreambleAsync(request);
        long ahead = cached.DecodeStatistics.Rows;
        // Asked again, the kept preamble is only marked used.
        await cached.PrefillPreambleAsync(request);
        long again = cached.DecodeStatistics.Rows - ahead;
        var answer = Completed(await CollectAll(cached.GenerateAsync(request)));
        long rows = cached.DecodeStatistics.Rows - ahead - again;
        var freshAnswer = Completed(await CollectAll(fresh.GenerateAsync(request)));
        long freshRows = fresh.DecodeStatistics.Rows;
        output.WriteLine($"preamble {preamblePositions} positions decoded ahead in {ahead} rows; the answer decoded {rows} rows, a fresh one {freshRows}");

        Assert.Equal(preamblePositions, ahead);
        Assert.Equal(0, again);
        Assert.Equal(1, cached.StageCounts.PreamblesPrefilledAhead);
        Assert.Equal(freshRows - preamblePositions, rows);
        Assert.Equal(freshAnswer.Tokens[7], answer.Tokens[7]);
        await Assert.ThrowsAsync<ArgumentException>(() => cached.PrefillPreambleAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "no preamble" }));
    }

    [Fact]
    public async Task AChatConversationThatExtendsItsLastRequestSharesTheEarlierPreamble()
    {
        var chat = fixture.Engine.AsIChatClient();
        var options = new ChatOptions { MaxOutputTokens = 6 };
        var messages = new List<ChatMessage>
        {
            new(ChatRole.System, "You are a weather assistant; answer briefly, kindly and in plain words."),
            new(ChatRole.User, "What is the weather like in Lisbon today?"),
            new(ChatRole.Assistant, "Sunny and warm."),
            new(ChatRole.User, "And tomorrow?"),
        };
        var first = await chat.GetResponseAsync(messages, options);
        messages.AddRange(first.Messages);
        messages.Add(new ChatMessage(ChatRole.User, "Should I take an umbrella?"));

        long before = fixture.Engine.Scheduler.ReusedPromptPositions;
        await chat.GetResponseAsync(messages, options);

        // The first request's preamble (the system turn and the first exchange) is not decoded again.
        Assert.True(fixture.Engine.Scheduler.ReusedPromptPositions - before >= 20, $"{fixture.Engine.Scheduler.ReusedPromptPositions - before} positions shared");
    }

    private static AnswerCompleted Completed(List<MiniOmniEvent> events) => Assert.IsType<AnswerCompleted>(events[^1]);

    private Task<List<MiniOmniEvent>> Collect(MiniOmniRequest request) => CollectAll(fixture.Engine.GenerateAsync(request));

    private static async Task<List<MiniOmniEvent>> CollectAll(IAsyncEnumerable<MiniOmniEvent> stream)
    {
        var events = new List<MiniOmniEvent>();
        await foreach (var item in stream)
        {
            events.Add(item);
        }

        return events;
    }
}
