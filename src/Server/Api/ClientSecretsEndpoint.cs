using System.Text.Json;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Api;

/// <summary>
/// POST /v1/realtime/client_secrets: an ephemeral key for a browser, in OpenAI's GA shape (<c>value</c>,
/// <c>expires_at</c>, <c>session</c>). The caller holds the real key (the key check has passed); the browser gets only
/// the <c>ek_</c> key, which opens one realtime session before it expires.
/// </summary>
internal static class ClientSecretsEndpoint
{
    public static async Task HandleAsync(HttpContext context, EphemeralKeys keys, ServerClients clients, IOptions<MiniOmniServerOptions> options)
    {
        var browsers = options.Value.Browsers;
        var request = context.Request.ContentLength is 0 || context.Request.ContentType is null
            ? new ClientSecretRequest()
            : await ApiJson.ReadAsync(context, ServerJsonContext.Default.ClientSecretRequest).ConfigureAwait(false);

        if (request.ExpiresAfter?.Anchor is { } anchor && anchor != "created_at")
        {
            throw ApiRequestException.Invalid($"expires_after.anchor is '{anchor}'; only 'created_at' is supported.", "expires_after.anchor");
        }

        int seconds = request.ExpiresAfter?.Seconds ?? browsers.EphemeralKeySeconds;
        if (seconds is < EphemeralKeys.MinSeconds or > EphemeralKeys.MaxSeconds)
        {
            throw ApiRequestException.Invalid($"expires_after.seconds is {seconds}; it must be {EphemeralKeys.MinSeconds} to {EphemeralKeys.MaxSeconds}.", "expires_after.seconds");
        }

        string type = request.Session is { ValueKind: JsonValueKind.Object } session && session.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()!
            : "realtime";
        if (type is not ("realtime" or "transcription"))
        {
            throw ApiRequestException.Invalid($"session.type is '{type}'; use 'realtime' or 'transcription'.", "session.type");
        }

        var issued = keys.Issue(TimeSpan.FromSeconds(seconds));
        if (issued is not { } key)
        {
            await new ApiError(429, $"{browsers.MaxEphemeralKeys} ephemeral keys are outstanding (MiniOmni:Browsers:MaxEphemeralKeys); use or let some expire first.",
                "rate_limit_exceeded", null, "too_many_ephemeral_keys").WriteAsync(context, options.Value.Limits.RetryAfterSeconds).ConfigureAwait(false);
            return;
        }

        long expiresAt = key.ExpiresAt.ToUnixTimeSeconds();
        var response = new ClientSecretResponse(key.Key, expiresAt, new ClientSecretSession(type, $"sess_{Guid.NewGuid():N}", clients.ModelId, expiresAt));
        await context.Response.WriteAsJsonAsync(response, ServerJsonContext.Default.ClientSecretResponse, "application/json", context.RequestAborted).ConfigureAwait(false);
    }
}

/// <summary>Every /v1 path this server does not serve: a 404 in OpenAI's error shape, as OpenAI answers one.</summary>
internal static class UnknownPathEndpoint
{
    public static Task HandleAsync(HttpContext context) =>
        new ApiError(404, $"Invalid URL ({context.Request.Method} {context.Request.Path}): this server serves chat/completions, audio/transcriptions, audio/speech, models, realtime and realtime/client_secrets under /v1.",
            "invalid_request_error", null, "unknown_url").WriteAsync(context, 1);
}
