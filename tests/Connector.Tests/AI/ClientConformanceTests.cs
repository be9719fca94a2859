using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>
/// The structural behaviour Microsoft.Extensions.AI's shared integration suites (<c>ChatClientIntegrationTests</c>,
/// <c>SpeechToTextClientIntegrationTests</c> in dotnet/extensions) hold every provider to, asked of our clients over the
/// fixture model: usage, streaming shape, history, caching, cancellation, finish reasons and required tool calls. Their
/// content checks (that the answer mentions a whale, that a tool is called with sensible arguments, that a transcript
/// says "gym") need real weights and are left out; so are features Mini-Omni does not have (images, PDFs, structured
/// output, parallel tool calls).
/// </summary>
public sealed class ClientConformanceTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private static readonly ChatOptions Short = new() { MaxOutputTokens = 12 };

    [Fact]
    public async Task AResponseReportsItsUsage()
    {
        using var client = fixture.Engine.AsIChatClient();

        var response = await client.GetResponseAsync("Explain in 10 words how AI works", Short);

        Assert.True(response.Usage?.InputTokenCount > 1);
        Assert.True(response.Usage?.OutputTokenCount > 1);
        Assert.Equal(response.Usage?.InputTokenCount + response.Usage?.OutputTokenCount, response.Usage?.TotalTokenCount);
    }

    [Fact]
    public async Task AStreamReportsItsUsageOnceAmongSeveralUpdates()
    {
        using var client = fixture.Engine.AsIChatClient();
        var chunks = new List<ChatResponseUpdate>();

        await foreach (var chunk in client.GetStreamingResponseAsync("Explain in 10 words how AI works", Short))
        {
            chunks.Add(chunk);
        }

        Assert.True(chunks.Count > 1);
        var usage = chunks.SelectMany(c => c.Contents).OfType<UsageContent>().Single();
        Assert.True(usage.Details.InputTokenCount > 1);
        Assert.True(usage.Details.OutputTokenCount > 1);
        Assert.Equal(usage.Details.InputTokenCount + usage.Details.OutputTokenCount, usage.Details.TotalTokenCount);
        Assert.Single(chunks.Select(c => c.ResponseId).Distinct());
        Assert.Equal(ChatFinishReason.Length, chunks[^1].FinishReason);
    }

    [Fact]
    public async Task AStreamedAnswerAppendsToTheHistoryAsOneAssistantMessage()
    {
        using var client = fixture.Engine.AsIChatClient();
        List<ChatMessage> history = [new(ChatRole.User, "Explain in 100 words how AI works")];

        await history.AddMessagesAsync(client.GetStreamingResponseAsync(history, Short));

        Assert.Equal(2, history.Count);
        Assert.Equal(ChatRole.Assistant, history[1].Role);
        var text = Assert.IsType<TextContent>(Assert.Single(history[1].Contents));
        Assert.NotEmpty(text.Text);
        Assert.Equal(history[1].Text, text.Text);
    }

    [Fact]
    public async Task ADistributedCacheAnswersTheSamePromptWithoutTheEngine()
    {
        var engine = new RecordingEngine(fixture.Engine);
        using var client = new DistributedCachingChatClient(engine.AsIChatClient(), new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())));
        var message = new ChatMessage(ChatRole.User, "Pick a random number, uniformly distributed between 1 and 1000000");

        var first = await client.GetResponseAsync([message], Short);
        for (int i = 0; i < 3; i++)
        {
            var again = await client.GetResponseAsync([message], Short);
            Assert.Equal(first.Messages.Select(m => m.Text), again.Messages.Select(m => m.Text));
            Assert.Equal(first.Usage?.OutputTokenCount, again.Usage?.OutputTokenCount);
        }

        Assert.Single(engine.Requests);
        // A different conversation is a miss: the engine answers it. (Whether its answer differs is the weights' business.)
        ((TextContent)message.Contents[0]).Text += "!";
        await client.GetResponseAsync([message], Short);
        Assert.Equal(2, engine.Requests.Count);
    }

    [Fact]
    public async Task ADistributedCacheReplaysAStreamedAnswer()
    {
        var engine = new RecordingEngine(fixture.Engine);
        using var client = new DistributedCachingChatClient(engine.AsIChatClient(), new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())));
        var message = new ChatMessage(ChatRole.User, "Pick a random number, uniformly distributed between 1 and 1000000");

        string original = await StreamText(client, message);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(original, await StreamText(client, message));
        }

        Assert.Single(engine.Requests);
        ((TextContent)message.Contents[0]).Text += "!";
        await StreamText(client, message);
        Assert.Equal(2, engine.Requests.Count);
    }

    [Fact]
    public async Task ACancelledStreamStopsAndTheNextRequestIsServed()
    {
        using var client = fixture.Engine.AsIChatClient();
        using var cancellation = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync("Tell me a long story", new ChatOptions { MaxOutputTokens = 500 }, cancellation.Token))
            {
                await cancellation.CancelAsync();
            }
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync("Hi", cancellationToken: cancellation.Token));

        Assert.NotEmpty((await client.GetResponseAsync("Hi", Short)).Text);
    }

    [Fact]
    public async Task AnAnswerCutByTheContextReportsLength()
    {
        using var client = fixture.Engine.AsIChatClient();
        // A history that leaves the answer fewer positions than the engine's default budget (160 steps in the fixture
        // engine): the fixture's answer never ends by itself, so the context, not the budget, cuts it.
        var history = Enumerable.Range(0, 84).Select(i => new ChatMessage(i % 2 == 0 ? ChatRole.User : ChatRole.Assistant, "tea tea tea tea tea tea"));

        var response = await client.GetResponseAsync([.. history, new ChatMessage(ChatRole.User, "And?")]);

        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.True(response.Usage?.OutputTokenCount < 160, $"The answer took {response.Usage?.OutputTokenCount} steps: its budget, not the context, ended it.");
        Assert.Equal(fixture.Engine.MaxPositions, response.Usage?.TotalTokenCount);
    }

    [Fact]
    public async Task RequiringAToolMakesTheAnswerOpenACallEvenUnderFunctionInvocation()
    {
        int called = 0;
        var secret = AIFunctionFactory.Create(() => { called++; return 123; }, "GetSecretNumber");
        var shields = AIFunctionFactory.Create(() => { called++; return true; }, "ShieldsUp");
        using var client = new FunctionInvokingChatClient(fixture.Engine.AsIChatClient());

        var any = await client.GetResponseAsync("Are birds real?", new ChatOptions { Tools = [secret], ToolMode = ChatToolMode.RequireAny, MaxOutputTokens = 20 });
        var specific = await client.GetResponseAsync("What's the current secret number?", new ChatOptions { Tools = [secret, shields], ToolMode = ChatToolMode.RequireSpecific("ShieldsUp"), MaxOutputTokens = 20 });

        // Random weights cannot finish the call (a tool called with sensible arguments needs real ones): what is checked
        // is that each answer opened one, as required, and that the unfinished call is reported, not read as text.
        var anyCall = Assert.Single(any.Messages.SelectMany(m => m.Contents).OfType<ErrorContent>());
        Assert.StartsWith("\n{\"name\": \"", anyCall.Details, StringComparison.Ordinal);
        var specificCall = Assert.Single(specific.Messages.SelectMany(m => m.Contents).OfType<ErrorContent>());
        Assert.StartsWith("\n{\"name\": \"ShieldsUp\", \"arguments\": ", specificCall.Details, StringComparison.Ordinal);
        Assert.Empty(any.Messages.SelectMany(m => m.Contents).OfType<DataContent>());
        Assert.Equal(0, called);
    }

    [Fact]
    public async Task SpeechToTextStreamsOneUpdatePerWindowThenItsUsage()
    {
        using var client = fixture.Engine.AsISpeechToTextClient();
        var options = new SpeechToTextOptions { AdditionalProperties = new() { [MiniOmniAudioOptions.MaxTokensKey] = 24 } };

        var response = await client.GetTextAsync(new MemoryStream(File.ReadAllBytes(Fixture.Question)), options);
        var updates = new List<SpeechToTextResponseUpdate>();
        await foreach (var update in client.GetStreamingTextAsync(new MemoryStream(File.ReadAllBytes(Fixture.Question)), options))
        {
            updates.Add(update);
        }

        Assert.NotEmpty(response.Text);
        Assert.Equal(response.Text, string.Concat(updates.Select(u => u.Text)));
        // The question is shorter than 30 s: one window, then the closing update with the usage.
        Assert.Equal(2, updates.Count);
        Assert.Equal(SpeechToTextResponseUpdateKind.TextUpdated, updates[0].Kind);
        Assert.Equal(TimeSpan.Zero, updates[0].StartTime);
        Assert.Equal(TimeSpan.FromSeconds(AudioDecoder.DecodeFile(Fixture.Question).Length / 16000.0), updates[0].EndTime);
        Assert.IsType<SpeechWindow>(updates[0].RawRepresentation);
        Assert.Equal(SpeechToTextResponseUpdateKind.SessionClose, updates[^1].Kind);
        Assert.Equal(24, response.Usage?.OutputTokenCount);
        Assert.IsAssignableFrom<MiniOmniEvent>(updates[^1].RawRepresentation);
    }

    private static async Task<string> StreamText(IChatClient client, ChatMessage message)
    {
        var text = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync([message], Short))
        {
            text.Append(update.Text);
        }

        return text.ToString();
    }
}
