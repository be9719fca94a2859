using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>How a <see cref="LoopbackThinker"/> answers.</summary>
internal sealed record LoopbackThinkerOptions
{
    /// <summary>The answer's text; <c>{tool}</c> in it becomes the last tool result the request carries.</summary>
    public string Answer { get; init; } = "Sure. It is sunny and warm today, with a light breeze from the sea.";

    /// <summary>Pieces streamed per second after the first.</summary>
    public double TokensPerSecond { get; init; } = 30;

    /// <summary>How long before the first piece.</summary>
    public TimeSpan FirstTokenDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Characters per streamed piece: pieces are cut anywhere, inside words and between a letter and its accent.</summary>
    public int CharactersPerToken { get; init; } = 4;

    /// <summary>When set, requests are answered with this HTTP status and an OpenAI-style error body (the first <see cref="Failures"/> of them).</summary>
    public int? FailWithStatus { get; init; }

    /// <summary>How many requests fail when <see cref="FailWithStatus"/> is set; the rest are answered.</summary>
    public int Failures { get; init; } = int.MaxValue;

    /// <summary>When set and the request offers this function and carries no tool result yet, the answer is a call to it.</summary>
    public string? CallTool { get; init; }

    /// <summary>The arguments of that call, as JSON.</summary>
    public string ToolArguments { get; init; } = "{}";

    /// <summary>The loopback port to listen on; 0 picks a free one.</summary>
    public int Port { get; init; }
}

/// <summary>When one request to a <see cref="LoopbackThinker"/> came and was answered, as <see cref="Stopwatch.GetTimestamp"/> values (0: not yet).</summary>
internal sealed record LoopbackThinkerTiming(long ReceivedAt, long FirstPieceAt);

/// <summary>
/// A stand-in thinker: an OpenAI-compatible chat completions endpoint on 127.0.0.1 that streams a set answer at a set rate
/// after a set first-token delay (or fails with a set status, or calls a tool first), for tests and <c>bench</c>. It
/// records each request's body and notices a client that goes away mid-answer (a cancelled request).
/// </summary>
internal sealed class LoopbackThinker : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly LoopbackThinkerOptions _options;
    private readonly Task _serving;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _requests = [];
    private readonly List<LoopbackThinkerTiming> _timings = [];
    private int _abandoned;
    private int _failed;
    private TaskCompletionSource _abandonedSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LoopbackThinker(LoopbackThinkerOptions? options = null)
    {
        _options = options ?? new LoopbackThinkerOptions();
        int port = _options.Port;
        if (port == 0)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
        }

        Endpoint = new Uri($"http://127.0.0.1:{port}/v1/");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _serving = ServeAsync();
    }

    /// <summary>The base address an OpenAI client takes (…/v1/).</summary>
    public Uri Endpoint { get; }

    /// <summary>The request bodies received, in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>When each request came and when its first piece (or its call, or its whole answer) went out, in the order they came.</summary>
    public IReadOnlyList<LoopbackThinkerTiming> Timings
    {
        get
        {
            lock (_requests)
            {
                return [.. _timings];
            }
        }
    }

    /// <summary>Answers whose client went away before they were finished.</summary>
    public int Abandoned => Volatile.Read(ref _abandoned);

    /// <summary>Completes when an answer is abandoned by its client.</summary>
    public Task AnswerAbandoned => _abandonedSignal.Task;

    /// <summary>The answer cut into the pieces it is streamed in.</summary>
    public static IReadOnlyList<string> Pieces(string answer, int charactersPerToken)
    {
        var pieces = new List<string>();
        for (int at = 0, length; at < answer.Length; at += length)
        {
            length = Math.Min(charactersPerToken, answer.Length - at);
            // JSON carries whole code points: a surrogate pair stays in one piece (a UTF-8 character may still be cut from the word it is in).
            if (char.IsHighSurrogate(answer[at + length - 1]) && at + length < answer.Length)
            {
                length++;
            }

            pieces.Add(answer.Substring(at, length));
        }

        return pieces;
    }

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
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().WaitAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested || !_listener.IsListening)
            {
                return;
            }

            _ = Task.Run(() => AnswerAsync(context));
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        long received = Stopwatch.GetTimestamp();
        var response = context.Response;
        int index;
        try
        {
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            string body = await reader.ReadToEndAsync(_stop.Token);
            lock (_requests)
            {
                index = _requests.Count;
                _requests.Add(body);
                _timings.Add(new LoopbackThinkerTiming(received, 0));
            }

            if (!context.Request.Url!.AbsolutePath.EndsWith("/chat/completions", StringComparison.Ordinal))
            {
                response.StatusCode = 404;
                response.Close();
                return;
            }

            if (_options.FailWithStatus is { } status && Interlocked.Increment(ref _failed) <= _options.Failures)
            {
                response.StatusCode = status;
                response.ContentType = "application/json";
                await response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes("""{"error":{"message":"The stand-in thinker is told to fail.","type":"server_error","code":"stand_in_failure"}}"""), _stop.Token);
                response.Close();
                return;
            }

            var request = JsonNode.Parse(body)!;
            bool stream = request["stream"]?.GetValue<bool>() == true;
            string model = request["model"]?.GetValue<string>() ?? "stand-in";
            var messages = request["messages"]?.AsArray() ?? [];
            string? toolResult = messages.LastOrDefault(m => m?["role"]?.GetValue<string>() == "tool")?["content"] is { } content
                ? content is JsonValue ? content.GetValue<string>() : string.Concat(content.AsArray().Select(part => part?["text"]?.GetValue<string>()))
                : null;
            bool offered = request["tools"]?.AsArray().Any(t => t?["function"]?["name"]?.GetValue<string>() == _options.CallTool) == true;
            bool callsTool = _options.CallTool is not null && offered && toolResult is null;
            string answer = _options.Answer.Replace("{tool}", toolResult ?? "", StringComparison.Ordinal);
            response.ContentType = stream ? "text/event-stream" : "application/json";
            response.SendChunked = stream;
            await Task.Delay(_options.FirstTokenDelay, _stop.Token);
            if (!stream)
            {
                Answered(index);
                await WriteAsync(response, JsonSerializer.Serialize(Completion(model, callsTool ? null : answer, callsTool)));
                response.Close();
                return;
            }

            if (callsTool)
            {
                Answered(index);
                await SendAsync(response, Chunk(model, new JsonObject { ["role"] = "assistant", ["tool_calls"] = new JsonArray(ToolCall(withIndex: true)) }, null));
                await SendAsync(response, Chunk(model, new JsonObject(), "tool_calls"));
            }
            else
            {
                var clock = Stopwatch.StartNew();
                var pieces = Pieces(answer, _options.CharactersPerToken);
                for (int i = 0; i < pieces.Count; i++)
                {
                    // Paced from the first piece, so a slow write does not slow the stream down further.
                    var due = TimeSpan.FromSeconds(i / _options.TokensPerSecond) - clock.Elapsed;
                    if (due > TimeSpan.Zero)
                    {
                        await Task.Delay(due, _stop.Token);
                    }

                    var delta = new JsonObject { ["content"] = pieces[i] };
                    if (i == 0)
                    {
                        delta["role"] = "assistant";
                        Answered(index);
                    }

                    await SendAsync(response, Chunk(model, delta, null));
                }

                await SendAsync(response, Chunk(model, new JsonObject(), "stop"));
            }

            await WriteAsync(response, "data: [DONE]\n\n");
            response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The client went away mid-answer.
            Interlocked.Increment(ref _abandoned);
            _abandonedSignal.TrySetResult();
            response.Abort();
        }
        catch (OperationCanceledException)
        {
            response.Abort();
        }
    }

    private void Answered(int index)
    {
        lock (_requests)
        {
            _timings[index] = _timings[index] with { FirstPieceAt = Stopwatch.GetTimestamp() };
        }
    }

    private JsonObject ToolCall(bool withIndex)
    {
        var call = new JsonObject
        {
            ["id"] = "call_stand_in_1",
            ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = _options.CallTool, ["arguments"] = _options.ToolArguments },
        };
        if (withIndex)
        {
            call["index"] = 0;
        }

        return call;
    }

    private JsonObject Completion(string model, string? answer, bool callsTool) => new()
    {
        ["id"] = "chatcmpl-stand-in",
        ["object"] = "chat.completion",
        ["created"] = 1,
        ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["message"] = callsTool
                ? new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(ToolCall(withIndex: false)) }
                : new JsonObject { ["role"] = "assistant", ["content"] = answer },
            ["finish_reason"] = callsTool ? "tool_calls" : "stop",
        }),
        ["usage"] = new JsonObject { ["prompt_tokens"] = 10, ["completion_tokens"] = 10, ["total_tokens"] = 20 },
    };

    private static string Chunk(string model, JsonObject delta, string? finish) => "data: " + new JsonObject
    {
        ["id"] = "chatcmpl-stand-in",
        ["object"] = "chat.completion.chunk",
        ["created"] = 1,
        ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
    }.ToJsonString() + "\n\n";

    private async Task SendAsync(HttpListenerResponse response, string text)
    {
        await WriteAsync(response, text);
        await response.OutputStream.FlushAsync(_stop.Token);
    }

    private Task WriteAsync(HttpListenerResponse response, string text) => response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes(text), _stop.Token).AsTask();

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"stand-in thinker at {Endpoint} ({_options.TokensPerSecond} pieces/s after {_options.FirstTokenDelay.TotalMilliseconds} ms)");
}
