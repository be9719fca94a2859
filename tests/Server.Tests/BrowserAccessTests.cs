using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MiniOmni.SK.Server.Tests.Infrastructure;
using OpenAI;
using OpenAI.Audio;
using OpenAI.Realtime;

namespace MiniOmni.SK.Server.Tests;

/// <summary>What a web page may do with the server: foreign origins, rebinding hosts, CORS, ephemeral keys, /metrics.</summary>
[Collection(ServerCollection.Name)]
public sealed class BrowserAccessTests(FixtureEngine fixture)
{
    private const string Key = "0123456789abcdef0123456789abcdef";

    [Fact]
    public async Task APageFromAnotherOriginCannotOpenTheSocketOfAKeylessServer()
    {
        await using var factory = new ServerFactory(fixture.Engine);
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        var socketUri = new Uri($"ws://{address.Authority}/v1/realtime");

        // What a browser sends when a page at evil.example opens ws://127.0.0.1:PORT/v1/realtime.
        using var foreign = new ClientWebSocket { Options = { CollectHttpResponseDetails = true } };
        foreign.Options.SetRequestHeader("Origin", "https://evil.example");
        await Assert.ThrowsAsync<WebSocketException>(() => foreign.ConnectAsync(socketUri, CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, foreign.HttpStatusCode);

        // The server's own page (same origin) and a client with no Origin (no browser) are served.
        foreach (string? origin in new[] { $"http://{address.Authority}", null })
        {
            using var own = new ClientWebSocket();
            if (origin is not null)
            {
                own.Options.SetRequestHeader("Origin", origin);
            }

            await own.ConnectAsync(socketUri, CancellationToken.None);
            Assert.Equal(WebSocketState.Open, own.State);
            await own.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        }
    }

    [Fact]
    public async Task ARequestNamingAForeignHostIsRefusedAsDnsRebindingWouldSendIt()
    {
        await using var factory = new ServerFactory(fixture.Engine);
        using var client = new HttpClient { BaseAddress = factory.StartKestrel() };
        await factory.WaitReadyAsync();

        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Host = "evil.example" } };
        using var local = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Host = "localhost" } };

        Assert.Equal(HttpStatusCode.BadRequest, (await client.SendAsync(rebound)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(local)).StatusCode);
    }

    [Fact]
    public async Task AForeignPagesPostIsRefusedEvenWithoutAPreflight()
    {
        await using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/audio/transcriptions") { Content = new MultipartFormDataContent() };
        request.Headers.Add("Origin", "https://evil.example");
        var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("origin_not_allowed", body.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task ThePreflightOfAnAllowedOriginIsAnsweredBeforeTheKeyCheckAndOthersGetNoGrant()
    {
        await using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:ApiKey"] = Key, ["MiniOmni:Browsers:AllowedOrigins:0"] = "https://app.example" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();

        async Task<HttpResponseMessage> Preflight(string origin)
        {
            using var request = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            request.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
            return await client.SendAsync(request);
        }

        var allowed = await Preflight("https://app.example");
        var other = await Preflight("https://evil.example");

        Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
        Assert.Equal("https://app.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("authorization", string.Join(",", allowed.Headers.GetValues("Access-Control-Allow-Headers")), StringComparison.OrdinalIgnoreCase);
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));

        // The allowed page's real request, with the key, is answered with the grant too.
        using var call = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", Key) } };
        call.Headers.Add("Origin", "https://app.example");
        var answer = await client.SendAsync(call);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("https://app.example", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Fact]
    public async Task MetricsNeedTheKeyUnlessMadePublic()
    {
        await using var guarded = new ServerFactory(fixture.Engine, new() { ["MiniOmni:ApiKey"] = Key });
        using var client = guarded.CreateClient();
        await using var open = new ServerFactory(fixture.Engine, new() { ["MiniOmni:ApiKey"] = Key, ["MiniOmni:Browsers:PublicMetrics"] = "true" });
        using var openClient = open.CreateClient();

        using var withKey = new HttpRequestMessage(HttpMethod.Get, "/metrics") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", Key) } };

        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(withKey)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await openClient.GetAsync("/metrics")).StatusCode);
    }

    [Fact]
    public async Task AnEphemeralKeyOpensOneSessionAndThenExpires()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        await using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:ApiKey"] = Key }, services: s => s.AddSingleton<TimeProvider>(clock));
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        var sdk = new RealtimeClient(new ApiKeyCredential(Key), new RealtimeClientOptions { Endpoint = new Uri(address, "/v1") });
        var socketUri = new Uri($"ws://{address.Authority}/v1/realtime");

        // The official SDK asks for one, as a browser app's backend would.
        CreateClientSecretResult first = (await sdk.CreateRealtimeClientSecretAsync(new CreateClientSecretOptions
        {
            ExpirationPolicy = new RealtimeClientSecretExpirationPolicy { Anchor = RealtimeClientSecretExpirationAnchor.CreatedAt, Seconds = 60 },
        })).Value;
        CreateClientSecretResult second = (await sdk.CreateRealtimeClientSecretAsync(new CreateClientSecretOptions())).Value;

        Assert.StartsWith("ek_", first.Value);
        Assert.NotEqual(first.Value, second.Value);
        Assert.Equal(clock.GetUtcNow().AddSeconds(60), first.ExpiresAt);
        Assert.Equal(clock.GetUtcNow().AddSeconds(600), second.ExpiresAt);

        // A browser's way: the key as a subprotocol. It opens one session; the same key again is refused.
        Assert.Equal(HttpStatusCode.SwitchingProtocols, await Connect(socketUri, first.Value));
        Assert.Equal(HttpStatusCode.Unauthorized, await Connect(socketUri, first.Value));

        // The other key outlives its lifetime unused: refused.
        clock.Advance(TimeSpan.FromSeconds(601));
        Assert.Equal(HttpStatusCode.Unauthorized, await Connect(socketUri, second.Value));

        // An ephemeral key opens nothing but the socket.
        using var http = new HttpClient { BaseAddress = address };
        var fresh = (await sdk.CreateRealtimeClientSecretAsync(new CreateClientSecretOptions())).Value;
        using var rest = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", fresh.Value) } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(rest)).StatusCode);
    }

    [Fact]
    public async Task EveryUnknownV1PathIsA404InOpenAIsErrorShape()
    {
        await using var factory = new ServerFactory(fixture.Engine);
        var api = new Uri(factory.StartKestrel(), "/v1");
        await factory.WaitReadyAsync();
        var audio = new AudioClient("whisper-1", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = api });

        var error = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranslateAudioAsync(new MemoryStream(fixture.QuestionWav), "question.wav"));
        using var http = new HttpClient { BaseAddress = api };
        var response = await http.GetAsync("/v1/no/such/thing");

        Assert.Equal(404, error.Status);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var wire = body.RootElement.GetProperty("error");
        Assert.Equal("unknown_url", wire.GetProperty("code").GetString());
        Assert.Contains("/v1/no/such/thing", wire.GetProperty("message").GetString());
    }

    private static async Task<HttpStatusCode> Connect(Uri uri, string key)
    {
        using var socket = new ClientWebSocket { Options = { CollectHttpResponseDetails = true } };
        socket.Options.AddSubProtocol("realtime");
        socket.Options.AddSubProtocol($"openai-insecure-api-key.{key}");
        try
        {
            await socket.ConnectAsync(uri, CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        }
        catch (WebSocketException)
        {
        }

        return socket.HttpStatusCode;
    }
}
