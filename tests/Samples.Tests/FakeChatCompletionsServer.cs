using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace MiniOmni.SK.Samples.Tests;

/// <summary>
/// An OpenAI-compatible chat completions endpoint on loopback that answers every request with one fixed text (streamed as
/// server-sent events when asked), so a sample's <c>--speak-with</c> runs offline. It records the requests' bodies and
/// serves at most a few requests, each bounded in time.
/// </summary>
internal sealed class FakeChatCompletionsServer : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly string _answer;
    private readonly Task _serving;
    private readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(5));

    public FakeChatCompletionsServer(string answer)
    {
        _answer = answer;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Endpoint = new Uri($"http://127.0.0.1:{port}/v1/");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _serving = ServeAsync();
    }

    public Uri Endpoint { get; }

    public List<string> Requests { get; } = [];

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _serving.ContinueWith(_ => { }, TaskScheduler.Default);
        _listener.Close();
        _stop.Dispose();
    }

    private async Task ServeAsync()
    {
        for (int served = 0; served < 8 && !_stop.IsCancellationRequested; served++)
        {
            var context = await _listener.GetContextAsync().WaitAsync(_stop.Token);
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            string body = await reader.ReadToEndAsync(_stop.Token);
            lock (Requests)
            {
                Requests.Add(body);
            }

            bool stream = JsonDocument.Parse(body).RootElement.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
            var response = context.Response;
            if (!context.Request.Url!.AbsolutePath.EndsWith("/chat/completions", StringComparison.Ordinal))
            {
                response.StatusCode = 404;
                response.Close();
                continue;
            }

            response.ContentType = stream ? "text/event-stream" : "application/json";
            string payload = stream ? Events() : Completion();
            byte[] bytes = Encoding.UTF8.GetBytes(payload);
            await response.OutputStream.WriteAsync(bytes, _stop.Token);
            response.Close();
        }
    }

    private string Completion() => JsonSerializer.Serialize(new
    {
        id = "chatcmpl-1",
        @object = "chat.completion",
        created = 1,
        model = "fake",
        choices = new[] { new { index = 0, message = new { role = "assistant", content = _answer }, finish_reason = "stop" } },
        usage = new { prompt_tokens = 5, completion_tokens = 5, total_tokens = 10 },
    });

    // The answer in two deltas, then the finish, then [DONE].
    private string Events()
    {
        int half = _answer.Length / 2;
        string Chunk(object delta, string? finish) => "data: " + JsonSerializer.Serialize(new
        {
            id = "chatcmpl-1",
            @object = "chat.completion.chunk",
            created = 1,
            model = "fake",
            choices = new[] { new { index = 0, delta, finish_reason = finish } },
        }) + "\n\n";
        return Chunk(new { role = "assistant", content = _answer[..half] }, null) + Chunk(new { content = _answer[half..] }, null) + Chunk(new { }, "stop") + "data: [DONE]\n\n";
    }
}
