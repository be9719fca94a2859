using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Hosting;
using MiniOmni.SK.Server.Tests.Infrastructure;

namespace MiniOmni.SK.Server.Tests;

/// <summary>The HTTP API in process: statuses, OpenAI's error shape, limits, health and metrics.</summary>
[Collection(ServerCollection.Name)]
public sealed class HttpApiTests(FixtureEngine fixture)
{
    [Fact]
    public async Task ChatAnswersATextQuestionInOpenAIsShape()
    {
        using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "x", messages = new[] { new { role = "user", content = "What is your name?" } }, max_tokens = 8 });

        response.EnsureSuccessStatusCode();
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = body.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        var choice = root.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.String, choice.GetProperty("message").GetProperty("content").ValueKind);
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(8, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task BadAudioIs400NamingThePartAndTheProblem()
    {
        using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", AudioQuestion(Encoding.ASCII.GetBytes("RIFF-not-really-a-wave-file"), "wav"));

        var error = await Error(response, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_audio", error.GetProperty("code").GetString());
        Assert.Contains("messages[0].content[0].input_audio", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task ChatAudioOverTheConfiguredLimitIs400NamingIt()
    {
        using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Limits:MaxAudioSeconds"] = "1" });
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", AudioQuestion(Wav(new float[16000 * 2]), "wav"));

        var error = await Error(response, HttpStatusCode.BadRequest);
        Assert.Equal("audio_too_long", error.GetProperty("code").GetString());
        Assert.Contains("MaxAudioSeconds", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task ABodyOverTheLimitIs413()
    {
        // Kestrel enforces the limit (the in-process test server has none): this one runs on a loopback port.
        using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Limits:MaxRequestBodyBytes"] = "4096" });
        using var client = new HttpClient { BaseAddress = factory.StartKestrel() };
        await factory.WaitReadyAsync();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = new string('a', 10000) } } });

        var error = await Error(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal("request_too_large", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task TooManyMessagesAndAnImagePartAreRefusedByField()
    {
        using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Limits:MaxMessages"] = "2" });
        using var client = factory.CreateClient();

        var many = await client.PostAsJsonAsync("/v1/chat/completions", new { messages = Enumerable.Repeat(new { role = "user", content = "hi" }, 3) });
        var image = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            messages = new[] { new { role = "user", content = new object[] { new { type = "image_url", image_url = new { url = "http://x" } } } } },
        });

        Assert.Equal("messages", (await Error(many, HttpStatusCode.RequestEntityTooLarge)).GetProperty("param").GetString());
        Assert.Equal("messages[0].content[0]", (await Error(image, HttpStatusCode.BadRequest)).GetProperty("param").GetString());
    }

    [Fact]
    public async Task AFullQueueIs429WithRetryAfter()
    {
        var release = new TaskCompletionSource();
        var engine = new ScriptedEngine((_, token) => ScriptedEngine.Play([new TextDelta("held"), ScriptedEngine.Completed(1, 1)], token, release.Task));
        using var factory = new ServerFactory(engine, new() { ["MiniOmni:MaxConcurrentAnswers"] = "1", ["MiniOmni:Limits:MaxQueuedAnswers"] = "0", ["MiniOmni:Limits:RetryAfterSeconds"] = "7" });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();

        var first = client.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "one" } } });
        await WaitUntil(() => engine.Requests.Count == 1);
        var second = await client.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "two" } } });
        release.SetResult();

        var error = await Error(second, HttpStatusCode.TooManyRequests);
        Assert.Equal("queue_full", error.GetProperty("code").GetString());
        Assert.Equal("7", second.Headers.RetryAfter?.Delta?.TotalSeconds.ToString());
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
    }

    [Fact]
    public async Task WhileTheModelLoadsTheApiIs503AndNotReadyButAlive()
    {
        var loader = new GatedLoader(fixture.Engine);
        using var factory = new ServerFactory(null, loader: loader);
        using var client = factory.CreateClient();

        var models = await client.GetAsync("/v1/models");
        var ready = await client.GetAsync("/readyz");
        var live = await client.GetAsync("/healthz");

        Assert.Equal("model_not_ready", (await Error(models, HttpStatusCode.ServiceUnavailable)).GetProperty("code").GetString());
        Assert.NotNull(models.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);

        loader.Release.SetResult();
        await factory.WaitReadyAsync();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
        using var list = JsonDocument.Parse(await client.GetStringAsync("/v1/models"));
        Assert.Equal(fixture.Engine.ModelId, list.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task WithAnApiKeyTheApiNeedsItButHealthDoesNot()
    {
        const string key = "0123456789abcdef0123456789abcdef";
        using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:ApiKey"] = key });
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();

        var missing = await client.GetAsync("/v1/models");
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key[..^1] + "0") } };
        using var right = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) } };

        Assert.Equal("invalid_api_key", (await Error(missing, HttpStatusCode.Unauthorized)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(wrong)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(right)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }

    [Theory]
    [InlineData("http://0.0.0.0:5000")]
    [InlineData("http://*:5000")]
    [InlineData("http://192.168.1.10:5000")]
    public async Task ListeningBeyondLoopbackWithoutAKeyFailsAtStartNamingTheUrl(string url)
    {
        // The server as `dotnet run --project src/Server` builds it (the test host would hide its start-up error).
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = MiniOmniServer.Build(["--model", fixture.ModelPath, "--urls", url]);
            await app.StartAsync();
        });

        Assert.Contains(url, error.Message);
        Assert.Contains("MiniOmni:ApiKey", error.Message);
    }

    [Fact]
    public async Task MetricsCountAnswersAndTheirTokens()
    {
        using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();
        await factory.WaitReadyAsync();

        string before = await client.GetStringAsync("/metrics");
        var answer = await client.PostAsJsonAsync("/v1/chat/completions", AudioQuestion(fixture.QuestionWav, "wav", modalities: ["text", "audio"]));
        answer.EnsureSuccessStatusCode();
        using var body = JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
        var usage = body.RootElement.GetProperty("usage");
        string metrics = await client.GetStringAsync("/metrics");

        // The values, as differences over this one answer (the meters may have counted earlier tests' answers).
        double Delta(string name, params string[] labels) => PrometheusSum(metrics, name, labels) - PrometheusSum(before, name, labels);
        Assert.Equal(1, Delta("miniomni_answers_total", "miniomni_answer_kind=\"chat\"", "miniomni_answer_outcome=\"completed\""));
        Assert.Equal(0, Delta("miniomni_answers_total", "miniomni_answer_outcome=\"failed\""));
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), Delta("miniomni_tokens_total", "miniomni_answer_kind=\"chat\"", "miniomni_token_direction=\"input\""));
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), Delta("miniomni_tokens_total", "miniomni_answer_kind=\"chat\"", "miniomni_token_direction=\"output\""));
        Assert.True(usage.GetProperty("completion_tokens").GetInt32() > 0);
        // One spoken answer: one time to first audio and one real-time factor, each positive and finite.
        Assert.Equal(1, Delta("miniomni_answer_time_to_first_audio_seconds_count", "miniomni_answer_kind=\"chat\""));
        double firstAudio = Delta("miniomni_answer_time_to_first_audio_seconds_sum", "miniomni_answer_kind=\"chat\"");
        Assert.True(firstAudio > 0 && double.IsFinite(firstAudio), $"time to first audio {firstAudio}");
        Assert.Equal(1, Delta("miniomni_answer_real_time_factor_count", "miniomni_answer_kind=\"chat\""));
        double factor = Delta("miniomni_answer_real_time_factor_sum", "miniomni_answer_kind=\"chat\"");
        Assert.True(factor > 0 && double.IsFinite(factor), $"real-time factor {factor}");
        // Nothing waits and nothing is still being answered once the answer is back.
        Assert.Equal(0, PrometheusSum(metrics, "miniomni_answers_queued"));
        Assert.Equal(0, PrometheusSum(metrics, "miniomni_answers_active", "miniomni_answer_kind=\"chat\""));
    }

    // The sum of the samples of metric name whose labels include every one of labels, in Prometheus' text format.
    private static double PrometheusSum(string exposition, string name, params string[] labels)
    {
        double sum = 0;
        foreach (string line in exposition.Split('\n'))
        {
            if (line.StartsWith('#') || !line.StartsWith(name, StringComparison.Ordinal))
            {
                continue;
            }

            string rest = line[name.Length..];
            string labelText = rest.StartsWith('{') ? rest[1..rest.IndexOf('}')] : "";
            if (!(rest.StartsWith('{') || rest.StartsWith(' ')) || !labels.All(label => labelText.Split(',').Contains(label)))
            {
                continue;
            }

            string[] fields = rest[(rest.StartsWith('{') ? rest.IndexOf('}') + 1 : 0)..].Trim().Split(' ');
            sum += double.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture);
        }

        return sum;
    }

    [Fact]
    public async Task SpeechStreamsAWavAndTranscriptionsAnswerInTextFormats()
    {
        using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();

        var speech = await client.PostAsJsonAsync("/v1/audio/speech", new { model = "m", input = "Hello there.", voice = "alloy", response_format = "wav" });
        speech.EnsureSuccessStatusCode();
        byte[] wav = await speech.Content.ReadAsByteArrayAsync();
        Assert.Equal("audio/wav", speech.Content.Headers.ContentType?.MediaType);
        Assert.True(wav.Length > 44 && (wav.Length - 44) % 2 == 0);

        foreach (string format in new[] { "text", "vtt" })
        {
            using var form = new MultipartFormDataContent
            {
                { new ByteArrayContent(fixture.QuestionWav) { Headers = { ContentType = new MediaTypeHeaderValue("audio/wav") } }, "file", "question.wav" },
                { new StringContent("whisper-1"), "model" },
                { new StringContent(format), "response_format" },
            };
            var response = await client.PostAsync("/v1/audio/transcriptions", form);
            Assert.True(response.IsSuccessStatusCode, $"{format}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    [Fact]
    public async Task UnderTheDefaultLimitRequestsWithoutABudgetFitTheModelsContext()
    {
        // MaxAnswerTokens' default (2048) is the model's whole context: given to an unbudgeted request as its budget, no
        // prompt could fit beside it. It caps the engine's default budget instead.
        var limits = new ServerLimits();
        // The fixture's engine with a short default budget, so that its random weights' answers (which never end) stay short.
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, new MiniOmniEngineOptions { ContextSize = 2048, Threads = 2, DefaultMaxTokens = 24 });
        Assert.True(limits.MaxAnswerTokens >= engine.MaxPositions, "the default limit is at least the fixture's context, as for the release");
        using var factory = new ServerFactory(engine, new() { ["MiniOmni:Limits:MaxAnswerTokens"] = limits.MaxAnswerTokens.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        using var client = factory.CreateClient();

        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(fixture.QuestionWav) { Headers = { ContentType = new MediaTypeHeaderValue("audio/wav") } }, "file", "question.wav" },
            { new StringContent("whisper-1"), "model" },
        };
        var transcription = await client.PostAsync("/v1/audio/transcriptions", form);
        Assert.True(transcription.IsSuccessStatusCode, $"{(int)transcription.StatusCode} {await transcription.Content.ReadAsStringAsync()}");

        var chat = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "mini-omni", messages = new[] { new { role = "user", content = "What is your name?" } } });
        Assert.True(chat.IsSuccessStatusCode, $"{(int)chat.StatusCode} {await chat.Content.ReadAsStringAsync()}");
        using var body = JsonDocument.Parse(await chat.Content.ReadAsStringAsync());
        int steps = body.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.Equal(24, steps);
    }

    private static object AudioQuestion(byte[] audio, string format, string[]? modalities = null) => new
    {
        model = "mini-omni",
        modalities = modalities ?? ["text"],
        max_tokens = 12,
        messages = new[] { new { role = "user", content = new object[] { new { type = "input_audio", input_audio = new { data = Convert.ToBase64String(audio), format } } } } },
    };

    private static byte[] Wav(float[] samples)
    {
        using var stream = new MemoryStream();
        Pcm16Wave.Write(stream, samples, 16000);
        return stream.ToArray();
    }

    private static async Task<JsonElement> Error(HttpResponseMessage response, HttpStatusCode status)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("error").Clone();
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (int i = 0; i < 600 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition(), "the condition did not hold within 30 s");
    }
}
