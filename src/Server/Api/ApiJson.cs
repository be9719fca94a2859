using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace MiniOmni.SK.Server.Api;

/// <summary>Reading request bodies and writing server-sent events with the source-generated serializer.</summary>
internal static class ApiJson
{
    /// <summary>Reads the JSON body; a body that is not JSON, or not this endpoint's, is a 400 that says why.</summary>
    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> type)
        where T : class
    {
        if (!context.Request.HasJsonContentType())
        {
            throw ApiRequestException.Invalid($"Send the request body as JSON (Content-Type: application/json); it came as '{context.Request.ContentType}'.", code: "invalid_content_type");
        }

        return await context.Request.ReadFromJsonAsync(type, context.RequestAborted).ConfigureAwait(false)
            ?? throw ApiRequestException.Invalid("The request body is empty or null; send a JSON object.", code: "invalid_json");
    }
}

/// <summary>A text/event-stream response: one <c>data:</c> line of JSON per event, flushed as it is written, then <c>[DONE]</c>.</summary>
internal sealed class ServerSentEvents(HttpResponse response)
{
    private static readonly byte[] Data = "data: "u8.ToArray();
    private static readonly byte[] End = "\n\n"u8.ToArray();

    public Task StartAsync()
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        // Proxies (nginx) pass each event on as it comes instead of buffering the stream.
        response.Headers["X-Accel-Buffering"] = "no";
        return response.StartAsync(response.HttpContext.RequestAborted);
    }

    public async Task WriteAsync<T>(T item, JsonTypeInfo<T> type)
    {
        await response.Body.WriteAsync(Data, response.HttpContext.RequestAborted).ConfigureAwait(false);
        await JsonSerializer.SerializeAsync(response.Body, item, type, response.HttpContext.RequestAborted).ConfigureAwait(false);
        await response.Body.WriteAsync(End, response.HttpContext.RequestAborted).ConfigureAwait(false);
        await response.Body.FlushAsync(response.HttpContext.RequestAborted).ConfigureAwait(false);
    }

    public async Task DoneAsync()
    {
        if (response.HttpContext.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        await response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), response.HttpContext.RequestAborted).ConfigureAwait(false);
        await response.Body.FlushAsync(response.HttpContext.RequestAborted).ConfigureAwait(false);
    }
}
