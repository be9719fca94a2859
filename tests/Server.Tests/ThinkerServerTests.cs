using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.Server.Tests.Infrastructure;
using OpenAI.Realtime;

namespace MiniOmni.SK.Server.Tests;

/// <summary>The server with <c>MiniOmni:Thinker</c> set to a stand-in thinker on loopback: its answers are spoken, its failures named.</summary>
[Collection(ServerCollection.Name)]
public sealed class ThinkerServerTests(FixtureEngine fixture)
{
    [Fact]
    public async Task ASpokenChatQuestionGetsTheThinkersAnswerSpoken()
    {
        const string Answer = "Yes, café time.";
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = Answer, FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        using var factory = new ServerFactory(fixture.Engine, Thinker(thinker));
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "mini-omni",
            modalities = new[] { "text", "audio" },
            audio = new { voice = "alloy", format = "wav" },
            messages = new[] { new { role = "user", content = new object[] { new { type = "input_audio", input_audio = new { data = Convert.ToBase64String(fixture.QuestionWav), format = "wav" } } } } },
        });

        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var message = JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(Answer, message.GetProperty("audio").GetProperty("transcript").GetString());
        Assert.True(Convert.FromBase64String(message.GetProperty("audio").GetProperty("data").GetString()!).Length > 44);
        Assert.Contains("stand-in-model", Assert.Single(thinker.Requests));
    }

    [Fact]
    public async Task AThinkerThatFailsIs502NamingItsEndpointAndStatus()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { FailWithStatus = 503 });
        using var factory = new ServerFactory(fixture.Engine, Thinker(thinker));
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "x", messages = new[] { new { role = "user", content = "Hello?" } } });

        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("thinker_failed", error.GetProperty("code").GetString());
        Assert.Contains(thinker.Endpoint.ToString(), error.GetProperty("message").GetString());
        Assert.Contains("HTTP 503", error.GetProperty("message").GetString());
    }

    [Fact]
    public void AThinkerWithoutAModelOrWithABadEndpointFailsAtStartNamingTheSetting()
    {
        using var noModel = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Thinker:Endpoint"] = "http://127.0.0.1:9/v1/" });
        Assert.Contains("MiniOmni:Thinker:Model", Assert.ThrowsAny<Exception>(() => noModel.CreateClient()).ToString());

        using var badEndpoint = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Thinker:Endpoint"] = "not a url", ["MiniOmni:Thinker:Model"] = "m" });
        Assert.Contains("MiniOmni:Thinker:Endpoint", Assert.ThrowsAny<Exception>(() => badEndpoint.CreateClient()).ToString());
    }

    [Fact]
    public async Task TheSdksRealtimeClientHearsTheThinkersAnswerSpokenAndItsCallToTheClientsToolComesBackAsAFunctionCallItem()
    {
        // Pieces of 3 characters cut words and "é" from what follows it; the answer takes the tool's result.
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions
        {
            Answer = "Sí, café: {tool}. Enjoy!",
            CallTool = "get_weather",
            ToolArguments = """{"city":"Paris"}""",
            CharactersPerToken = 3,
            FirstTokenDelay = TimeSpan.Zero,
            TokensPerSecond = 300,
        });
        using var factory = new ServerFactory(fixture.Engine, Thinker(thinker));
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        var realtime = new RealtimeClient(new ApiKeyCredential("not-needed-on-loopback"), new RealtimeClientOptions { Endpoint = new Uri(address, "/v1") });
        using var session = await realtime.StartConversationSessionAsync("mini-omni");
        var input = new RealtimeConversationSessionInputAudioOptions();
        input.DisableTurnDetection();
        var options = new RealtimeConversationSessionOptions { AudioOptions = new RealtimeConversationSessionAudioOptions { InputAudioOptions = input } };
        options.Tools.Add(new RealtimeFunctionTool("get_weather")
        {
            FunctionDescription = "The weather in a city.",
            FunctionParameters = BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""),
        });
        await session.ConfigureConversationSessionAsync(options);

        // The fixture's spoken question at the realtime API's 24 kHz, committed by the client.
        foreach (byte[] chunk in Pcm16Wave.ToPcm16Bytes(OpenAIClientTests.Resample(fixture.Question, 16000, 24000)).Chunk(4800))
        {
            await session.SendInputAudioAsync(BinaryData.FromBytes(chunk));
        }

        await session.CommitPendingAudioAsync();
        await session.StartResponseAsync();
        var calling = await ReceiveUntilResponseDone(session);
        var call = Assert.IsType<RealtimeFunctionCallItem>(Assert.Single(calling.OfType<RealtimeServerUpdateResponseOutputItemDone>()).Item);
        await session.AddItemAsync(RealtimeItem.CreateFunctionCallOutputItem(call.CallId, "sunny, 21 °C"));
        await session.StartResponseAsync();
        var answering = await ReceiveUntilResponseDone(session);

        Assert.Empty(calling.OfType<RealtimeServerUpdateError>());
        Assert.Empty(answering.OfType<RealtimeServerUpdateError>());

        // The client's tool went to the thinker, and its call came back as the client's function call item.
        Assert.Equal(2, thinker.Requests.Count);
        var asked = JsonDocument.Parse(thinker.Requests[0]).RootElement;
        Assert.Equal("get_weather", Assert.Single(asked.GetProperty("tools").EnumerateArray().ToList()).GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("user", asked.GetProperty("messages").EnumerateArray().Last().GetProperty("role").GetString());
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("call_stand_in_1", call.CallId);
        Assert.Equal("Paris", JsonDocument.Parse(call.FunctionArguments).RootElement.GetProperty("city").GetString());
        Assert.Equal(RealtimeResponseStatus.Completed, Assert.Single(calling.OfType<RealtimeServerUpdateResponseDone>()).Response.Status);
        Assert.Empty(calling.OfType<RealtimeServerUpdateResponseOutputAudioDelta>());

        // Its result went back to the thinker, and the spoken answer is the thinker's text, piece for piece, with speech.
        var goingOn = JsonDocument.Parse(thinker.Requests[1]).RootElement.GetProperty("messages").EnumerateArray().ToList();
        Assert.Contains(goingOn, m => m.GetProperty("role").GetString() == "tool" && m.GetProperty("content").ToString().Contains("sunny, 21 °C", StringComparison.Ordinal));
        Assert.Equal("Sí, café: sunny, 21 °C. Enjoy!", string.Concat(answering.OfType<RealtimeServerUpdateResponseOutputAudioTranscriptDelta>().Select(d => d.Delta)));
        Assert.Equal("Sí, café: sunny, 21 °C. Enjoy!", Assert.Single(answering.OfType<RealtimeServerUpdateResponseOutputAudioTranscriptDone>()).Transcript);
        Assert.NotEmpty(answering.OfType<RealtimeServerUpdateResponseOutputAudioDelta>().SelectMany(d => d.Delta.ToArray()));
        Assert.NotEqual(RealtimeResponseStatus.Failed, Assert.Single(answering.OfType<RealtimeServerUpdateResponseDone>()).Response.Status);
    }

    [Fact]
    public async Task AFailingThinkerGivesTheSdksRealtimeClientAnErrorNamingItsEndpointAndStatusAndTheSessionGoesOn()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = "Back again.", FailWithStatus = 503, Failures = 1, FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        using var factory = new ServerFactory(fixture.Engine, Thinker(thinker));
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        var realtime = new RealtimeClient(new ApiKeyCredential("not-needed-on-loopback"), new RealtimeClientOptions { Endpoint = new Uri(address, "/v1") });
        using var session = await realtime.StartConversationSessionAsync("mini-omni");

        await session.AddItemAsync(RealtimeItem.CreateUserMessageItem("Hello?"));
        await session.StartResponseAsync();
        var failing = await ReceiveUntilResponseDone(session);
        await session.AddItemAsync(RealtimeItem.CreateUserMessageItem("Are you there?"));
        await session.StartResponseAsync();
        var goingOn = await ReceiveUntilResponseDone(session);

        string message = Assert.Single(failing.OfType<RealtimeServerUpdateError>()).Error.Message;
        Assert.Contains(thinker.Endpoint.ToString(), message, StringComparison.Ordinal);
        Assert.Contains("503", message, StringComparison.Ordinal);
        Assert.Equal(RealtimeResponseStatus.Failed, Assert.Single(failing.OfType<RealtimeServerUpdateResponseDone>()).Response.Status);
        Assert.Empty(goingOn.OfType<RealtimeServerUpdateError>());
        Assert.Equal("Back again.", string.Concat(goingOn.OfType<RealtimeServerUpdateResponseOutputAudioTranscriptDelta>().Select(d => d.Delta)));
        Assert.Equal(2, thinker.Requests.Count);
    }

    private static async Task<List<RealtimeServerUpdate>> ReceiveUntilResponseDone(RealtimeSessionClient session)
    {
        var updates = new List<RealtimeServerUpdate>();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await foreach (var update in session.ReceiveUpdatesAsync(guard.Token))
        {
            updates.Add(update);
            if (update is RealtimeServerUpdateResponseDone)
            {
                break;
            }
        }

        return updates;
    }

    private static Dictionary<string, string?> Thinker(LoopbackThinker thinker) => new()
    {
        ["MiniOmni:Thinker:Endpoint"] = thinker.Endpoint.ToString(),
        ["MiniOmni:Thinker:Model"] = "stand-in-model",
    };
}
