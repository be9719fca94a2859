using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.Server.Tests.Infrastructure;

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

    private static Dictionary<string, string?> Thinker(LoopbackThinker thinker) => new()
    {
        ["MiniOmni:Thinker:Endpoint"] = thinker.Endpoint.ToString(),
        ["MiniOmni:Thinker:Model"] = "stand-in-model",
    };
}
