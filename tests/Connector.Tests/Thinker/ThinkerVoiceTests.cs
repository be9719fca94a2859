using System.ClientModel;
using System.ComponentModel;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.Connector.Tests.AI;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Engine;
using OpenAI;
using FunctionCallContent = Microsoft.Extensions.AI.FunctionCallContent;
using FunctionResultContent = Microsoft.Extensions.AI.FunctionResultContent;
using TextContent = Microsoft.Extensions.AI.TextContent;

namespace MiniOmni.SK.Connector.Tests.Thinker;

/// <summary>
/// A thinker answers and Mini-Omni hears and speaks: the voice middleware around an OpenAI-compatible stand-in thinker on
/// loopback (through the OpenAI SDK and MEAI's client for it), on the fixture model.
/// </summary>
public sealed class ThinkerVoiceTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private const string Answer = "Sure: the café's open 'til 9, 東京 too 👍🏽 and naïve coöperation — enjoy!";

    [Fact]
    public async Task TheThinkersTextIsSpokenTokenForToken()
    {
        // Three characters a piece: pieces end inside words, between "é" and what follows, inside "東京".
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = Answer, CharactersPerToken = 3, TokensPerSecond = 200, FirstTokenDelay = TimeSpan.FromMilliseconds(30) });
        var engine = new RecordingEngine(fixture.Engine);
        var voice = ThinkerClient(thinker).AsBuilder().UseMiniOmniVoice(engine, Quick).Build();

        var updates = await Collect(voice.GetStreamingResponseAsync([SpokenQuestion()]));

        string transcript = Assert.IsType<string>(updates.First(u => u.AdditionalProperties?.ContainsKey(MiniOmniVoiceChatClient.TranscriptKey) == true).AdditionalProperties![MiniOmniVoiceChatClient.TranscriptKey]);
        Assert.Equal(Answer, string.Concat(updates.SelectMany(u => u.Contents).OfType<TextContent>().Select(t => t.Text)));
        Assert.Contains(updates.SelectMany(u => u.Contents), c => c is DataContent { MediaType: MiniOmniMediaTypes.SpeechChunk });
        // The voice heard the question (ASR), then read the thinker's text aloud as it streamed, its forced tokens exactly the text's.
        Assert.Equal([MiniOmniTask.Asr, MiniOmniTask.ReadAloud], engine.Requests.Select(r => r.Task));
        Assert.Equal(transcript.Length > 0 ? transcript : "[speech]", engine.Requests[1].Text);
        int[] tokens = fixture.Engine.TokenizeText(Answer);
        var spoken = engine.Completed.Last();
        Assert.Equal(tokens, spoken.Tokens[7].Take(tokens.Length));
        Assert.Equal(151936, spoken.Tokens[7][tokens.Length]); // EOT right after the last token
        // The thinker was asked the transcript, as text.
        var asked = JsonNode.Parse(Assert.Single(thinker.Requests))!["messages"]!.AsArray();
        Assert.Equal(transcript, asked[^1]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task StoppingTheAnswerCancelsTheThinkersRequest()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = string.Concat(Enumerable.Repeat("On and on it goes. ", 30)), TokensPerSecond = 5, FirstTokenDelay = TimeSpan.Zero });
        var voice = ThinkerClient(thinker).AsBuilder().UseMiniOmniVoice(fixture.Engine).Build();
        using var bargeIn = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in voice.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Talk to me.")], cancellationToken: bargeIn.Token))
            {
                if (update.Contents.Any(c => c is DataContent))
                {
                    bargeIn.Cancel();
                }
            }
        });

        await thinker.AnswerAbandoned.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, thinker.Abandoned);
    }

    [Fact]
    public async Task AnUnreachableOrFailingThinkerGivesAClearErrorAndTheVoiceGoesOn()
    {
        int closedPort = ClosedPort();
        var unreachable = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri($"http://127.0.0.1:{closedPort}/v1/"), NetworkTimeout = TimeSpan.FromSeconds(20), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) })
            .GetChatClient("far-away").AsIChatClient();
        var voice = unreachable.AsBuilder().UseMiniOmniVoice(fixture.Engine).Build();

        var error = await Assert.ThrowsAsync<MiniOmniThinkerException>(() => voice.GetResponseAsync("Hello?"));

        Assert.Contains($"127.0.0.1:{closedPort}", error.Message);
        Assert.Contains("far-away", error.Message);
        Assert.Contains("could not be reached", error.Message);
        Assert.Null(error.StatusCode);

        await using (var failing = new LoopbackThinker(new LoopbackThinkerOptions { FailWithStatus = 503 }))
        {
            var status = await Assert.ThrowsAsync<MiniOmniThinkerException>(() => ThinkerClient(failing).AsBuilder().UseMiniOmniVoice(fixture.Engine).Build().GetResponseAsync("Hello?"));
            Assert.Equal(503, status.StatusCode);
            Assert.Contains("HTTP 503", status.Message);
            Assert.Contains(failing.Endpoint.Authority, status.Message);
        }

        // The engine is unharmed: the next turn, with a thinker that answers, is spoken.
        await using var working = new LoopbackThinker(new LoopbackThinkerOptions { Answer = "All good.", FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 500 });
        var response = await ThinkerClient(working).AsBuilder().UseMiniOmniVoice(fixture.Engine).Build().GetResponseAsync("Hello?");
        Assert.Equal("All good.", response.Text);
        Assert.Contains(response.Messages[0].Contents, c => c is DataContent { MediaType: MiniOmniMediaTypes.Wav });
    }

    [Fact]
    public async Task TheCallersToolsAreOfferedToTheThinkerAndItsCallsComeBack()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { CallTool = "GetWeather", ToolArguments = """{"city":"Oslo"}""", FirstTokenDelay = TimeSpan.Zero });
        var voice = ThinkerClient(thinker).AsBuilder().UseMiniOmniVoice(fixture.Engine).Build();

        var response = await voice.GetResponseAsync("Weather in Oslo?", new ChatOptions { Tools = [AIFunctionFactory.Create((string city) => "sunny", "GetWeather")] });

        var call = Assert.IsType<FunctionCallContent>(Assert.Single(response.Messages[0].Contents, c => c is FunctionCallContent));
        Assert.Equal("GetWeather", call.Name);
        Assert.Equal("Oslo", call.Arguments!["city"]!.ToString());
        Assert.Equal(ChatFinishReason.ToolCalls, response.FinishReason);
        Assert.DoesNotContain(response.Messages[0].Contents, c => c is DataContent);
        Assert.Contains("GetWeather", thinker.Requests[0]);
    }

    [Fact]
    public async Task AnAgentFrameworkAgentAnswersByVoiceWithAPluginCall()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = "It is {tool} kilometres.", CallTool = "MilesToKilometres", ToolArguments = """{"miles":3.1}""", FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        var engine = new RecordingEngine(fixture.Engine);
        var agent = new ChatClientAgent(
            ThinkerClient(thinker).AsBuilder().UseMiniOmniVoice(engine, Quick).Build(),
            instructions: "You convert units.",
            tools: [AIFunctionFactory.Create(new UnitsPlugin().MilesToKilometres)]);

        var response = await agent.RunAsync([SpokenQuestion()]);

        Assert.Equal("It is 4.989 kilometres.", response.Text);
        Assert.Contains(response.Messages.SelectMany(m => m.Contents), c => c is DataContent { MediaType: MiniOmniMediaTypes.Wav });
        Assert.Contains(response.Messages.SelectMany(m => m.Contents), c => c is FunctionResultContent { Result: not null });
        Assert.Equal(2, thinker.Requests.Count);
        Assert.Contains("You convert units.", thinker.Requests[0]);
        Assert.Contains("4.989", thinker.Requests[1]);
        Assert.Equal(MiniOmniTask.ReadAloud, engine.Requests[^1].Task);
        Assert.True(engine.Completed[^1].SpeechSeconds > 0);
        // The question is heard once, though the agent's function loop sends it twice.
        Assert.Single(engine.Requests, r => r.Task == MiniOmniTask.Asr);
    }

    [Fact]
    public async Task ASemanticKernelChatServiceWithAThinkerAnswersByVoiceWithAPluginCall()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = "That is {tool} km.", CallTool = "Units_MilesToKilometres", ToolArguments = """{"miles":1}""", FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        var engine = new RecordingEngine(fixture.Engine);
        var builder = Kernel.CreateBuilder();
        var voiceOptions = new MiniOmniVoiceOptions();
        Quick(voiceOptions);
        builder.Services.AddMiniOmni(_ => engine, thinker: _ => ThinkerClient(thinker), voiceOptions: voiceOptions);
        var kernel = builder.Build();
        kernel.Plugins.AddFromType<UnitsPlugin>("Units");
        var history = new ChatHistory();
        history.AddUserMessage([new Microsoft.SemanticKernel.AudioContent(await File.ReadAllBytesAsync(Fixture.Question), "audio/wav")]);

        var answer = await kernel.GetRequiredService<IChatCompletionService>().GetChatMessageContentAsync(
            history, new PromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto() }, kernel);

        Assert.Equal("That is 1.609 km.", answer.Content);
        Assert.Equal(2, thinker.Requests.Count);
        Assert.Contains("Units_MilesToKilometres", thinker.Requests[0]);
        Assert.Contains("1.609", thinker.Requests[1]);
        Assert.Equal(MiniOmniTask.ReadAloud, engine.Requests[^1].Task);
        Assert.True(engine.Completed[^1].SpeechSeconds > 0);
        Assert.IsType<MiniOmniVoiceChatClient>(kernel.Services.GetRequiredService<IChatClient>());
    }

    // The fixture's random weights never end a transcript: a short one keeps the tests quick.
    [Fact]
    public async Task AThinkersAnswerLongerThanOneVoiceAnswersBudgetGoesOnInFurtherVoiceAnswersUntilAllIsSpoken()
    {
        // An engine whose default budget (no budget asked) is 40 steps: the answer's ~150 tokens need several voice answers.
        string answer = string.Concat(Enumerable.Range(1, 30).Select(i => $"Word {i}, café. "));
        using var shortBudget = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { DefaultMaxTokens = 40 });
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = answer, CharactersPerToken = 7, TokensPerSecond = 400, FirstTokenDelay = TimeSpan.Zero });
        var engine = new RecordingEngine(shortBudget);

        var response = await ThinkerClient(thinker).AsBuilder().UseMiniOmniVoice(engine, Quick).Build().GetResponseAsync("Count for me.");

        // The whole text is spoken, no token lost or doubled where one voice answer hands over to the next.
        Assert.Equal(answer, response.Text);
        int voiceAnswers = engine.Requests.Count(r => r.Task == MiniOmniTask.ReadAloud);
        Assert.InRange(voiceAnswers, 3, 10);
        Assert.All(engine.Completed.Take(voiceAnswers - 1), c => Assert.Equal(AnswerStopReason.Budget, c.StopReason));
        Assert.Single(thinker.Requests);

        // A budget the caller set is kept: one voice answer, cut off.
        engine = new RecordingEngine(shortBudget);
        var capped = await ThinkerClient(thinker).AsBuilder().UseMiniOmniVoice(engine, o => { Quick(o); o.MaxSpeechSteps = 30; }).Build().GetResponseAsync("Count for me.");
        Assert.Single(engine.Requests, r => r.Task == MiniOmniTask.ReadAloud);
        Assert.StartsWith(capped.Text, answer, StringComparison.Ordinal);
        Assert.True(capped.Text.Length < answer.Length / 2, capped.Text);
    }

    private static void Quick(MiniOmniVoiceOptions options)
    {
        options.TranscriptMaxTokens = 12;
        options.EncoderMode = MiniOmni.SK.Speech.EncoderMode.Fast;
    }

    private static IChatClient ThinkerClient(LoopbackThinker thinker) =>
        new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = thinker.Endpoint, RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) }).GetChatClient("stand-in").AsIChatClient();

    private static ChatMessage SpokenQuestion() => new(ChatRole.User, [new DataContent(File.ReadAllBytes(Fixture.Question), "audio/wav")]);

    private static int ClosedPort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    private static async Task<List<ChatResponseUpdate>> Collect(IAsyncEnumerable<ChatResponseUpdate> updates)
    {
        var list = new List<ChatResponseUpdate>();
        await foreach (var update in updates)
        {
            list.Add(update);
        }

        return list;
    }

    public sealed class UnitsPlugin
    {
        [KernelFunction, Description("Converts miles to kilometres.")]
        public double MilesToKilometres([Description("distance in miles")] double miles) => Math.Round(miles * 1.609344, 3);
    }
}
