using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Server.Api;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>
/// Guards the API (<c>/v1</c>). With an API key set, a request must carry it as <c>Authorization: Bearer KEY</c> or, from
/// a browser's WebSocket (which cannot set headers), as the subprotocol <c>openai-insecure-api-key.KEY</c>; the keys are
/// compared in constant time (as SHA-256 digests, so that their lengths leak nothing either). The realtime socket also
/// takes an ephemeral key (<c>ek_...</c>, see <see cref="EphemeralKeys"/>), once. Without a key, only clients on this
/// machine (loopback) are served, whatever the server listens on. <c>/metrics</c> is guarded alike unless
/// <see cref="BrowserAccessOptions.PublicMetrics"/>.
/// </summary>
internal sealed class ApiKeyMiddleware(RequestDelegate next, IOptions<MiniOmniServerOptions> options, EphemeralKeys ephemeralKeys)
{
    private const string KeyProtocolPrefix = "openai-insecure-api-key.";
    private readonly byte[]? _expected = options.Value.ApiKey is { Length: > 0 } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;

    public async Task InvokeAsync(HttpContext context)
    {
        bool guarded = context.Request.Path.StartsWithSegments("/v1")
            || (context.Request.Path.StartsWithSegments("/metrics") && !options.Value.Browsers.PublicMetrics);
        if (!guarded)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (_expected is null)
        {
            var remote = context.Connection.RemoteIpAddress;
            if (remote is not null && !IPAddress.IsLoopback(remote))
            {
                await Refuse(context, 403, $"This server has no API key, so it serves only this machine; {remote} is not loopback. Set MiniOmni:ApiKey to serve other machines.", "no_api_key_configured");
                return;
            }
        }
        else if (Presented(context) is { } ephemeral && ephemeral.StartsWith(EphemeralKeys.Prefix, StringComparison.Ordinal))
        {
            // Good for one realtime session, the only thing a browser's key opens.
            if (!context.WebSockets.IsWebSocketRequest || !context.Request.Path.StartsWithSegments("/v1/realtime"))
            {
                await Refuse(context, 401, "An ephemeral key (ek_...) opens a realtime session only; send the API key for other requests.", "invalid_api_key");
                return;
            }

            if (!ephemeralKeys.TryRedeem(ephemeral))
            {
                await Refuse(context, 401, "The ephemeral key has expired, was already used, or was not issued by this server; ask for a new one (POST /v1/realtime/client_secrets).", "invalid_api_key");
                return;
            }
        }
        else if (!Matches(Presented(context)))
        {
            await Refuse(context, 401, "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'.", "invalid_api_key");
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private static string? Presented(HttpContext context)
    {
        string? authorization = context.Request.Headers.Authorization;
        if (authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        return context.WebSockets.IsWebSocketRequest
            ? context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault(p => p.StartsWith(KeyProtocolPrefix, StringComparison.Ordinal))?[KeyProtocolPrefix.Length..]
            : null;
    }

    private bool Matches(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), _expected);

    private static Task Refuse(HttpContext context, int status, string message, string code)
    {
        if (status == 401)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }

        return new ApiError(status, message, "invalid_request_error", null, code).WriteAsync(context, 1);
    }
}
