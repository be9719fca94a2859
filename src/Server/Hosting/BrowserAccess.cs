using System.Net;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.HostFiltering;
using Microsoft.Extensions.Options;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>
/// Which web pages may use the server (section <c>MiniOmni:Browsers</c>). A page the user merely visits must not drive
/// a server on this machine: requests to the API that carry a browser's <c>Origin</c> are served only for the allowed
/// origins (by default loopback pages and the server's own page), and the <c>Host</c> a request names must be this
/// server's (loopback by default), so that DNS rebinding cannot pass a foreign site off as localhost.
/// </summary>
public sealed class BrowserAccessOptions
{
    /// <summary>Origins (<c>https://app.example.com</c>) whose pages may call the API and open the realtime socket; <c>*</c> allows any.</summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>Whether pages served from this machine (<c>http://localhost:*</c>, <c>http://127.0.0.1:*</c>, <c>http://[::1]:*</c>) are allowed.</summary>
    public bool AllowLoopbackOrigins { get; set; } = true;

    /// <summary>
    /// Host names requests may address, besides loopback and the hosts the server listens on (ASP.NET Core's host
    /// filtering; a top-level <c>AllowedHosts</c> setting replaces this whole rule). <c>*</c> allows any.
    /// </summary>
    public List<string> AllowedHosts { get; set; } = [];

    /// <summary>Whether <c>/metrics</c> is served without the API key (by default it needs the key, or loopback on a keyless server).</summary>
    public bool PublicMetrics { get; set; }

    /// <summary>The lifetime of an ephemeral key when its request names none (<c>expires_after.seconds</c>: 10 to 7200).</summary>
    public int EphemeralKeySeconds { get; set; } = 600;

    /// <summary>The most ephemeral keys outstanding at once; beyond them: 429.</summary>
    public int MaxEphemeralKeys { get; set; } = 1024;
}

/// <summary>The allowed-origin rule shared by CORS and the API's origin check.</summary>
internal static class BrowserOrigins
{
    /// <summary>Whether a page from <paramref name="origin"/> may use the API; <paramref name="requestHost"/> (the Host header) makes the server's own page allowed.</summary>
    public static bool IsAllowed(BrowserAccessOptions options, string origin, string? requestHost)
    {
        if (options.AllowedOrigins.Any(allowed => allowed == "*" || string.Equals(allowed.TrimEnd('/'), origin.TrimEnd('/'), StringComparison.OrdinalIgnoreCase)))
        {
            return true;
        }

        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            // "null" (a sandboxed frame, a file) and other schemes are never this server's page.
            return false;
        }

        if (options.AllowLoopbackOrigins && IsLoopbackHost(uri.Host))
        {
            return true;
        }

        // The server's own page: the origin is the address the request was sent to (host filtering has vouched for that host).
        return requestHost is { Length: > 0 } && string.Equals(uri.Authority, requestHost, StringComparison.OrdinalIgnoreCase);
    }

    public static bool IsLoopbackHost(string host)
    {
        host = host.Trim('[', ']');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address));
    }

    /// <summary>The hosts requests may name: loopback, the hosts the server listens on, and those configured; <c>*</c> when it listens on every interface and none are configured.</summary>
    public static List<string> AllowedHosts(BrowserAccessOptions options, IConfiguration configuration)
    {
        var hosts = new List<string> { "localhost", "127.0.0.1", "[::1]" };
        bool everywhere = false;
        foreach (string url in MiniOmniServerOptionsValidator.ListenUrls(configuration))
        {
            var match = System.Text.RegularExpressions.Regex.Match(url, @"^[a-zA-Z]+://(\[[^\]]*\]|[^:/]*)");
            string host = match.Success ? match.Groups[1].Value : "*";
            if (host is "*" or "+" or "" or "0.0.0.0" or "[::]")
            {
                everywhere = true;
            }
            else
            {
                hosts.Add(host);
            }
        }

        if (options.AllowedHosts.Count > 0)
        {
            hosts.AddRange(options.AllowedHosts);
        }
        else if (everywhere)
        {
            // Any name may reach a server on every interface (the validator has made sure it has a key): nothing to pin.
            return ["*"];
        }

        return hosts;
    }
}

/// <summary>Registers CORS and host filtering from <see cref="BrowserAccessOptions"/>.</summary>
internal static class BrowserAccessSetup
{
    public const string CorsPolicy = "browsers";

    public static void AddBrowserAccess(this IServiceCollection services)
    {
        services.AddCors();
        services.AddOptions<CorsOptions>().Configure<IOptions<MiniOmniServerOptions>>((cors, options) =>
        {
            var browsers = options.Value.Browsers;
            cors.AddPolicy(CorsPolicy, policy => policy
                // Cross-origin requests never have the server's own origin, so only the allowed list and loopback count here.
                .SetIsOriginAllowed(origin => BrowserOrigins.IsAllowed(browsers, origin, requestHost: null))
                .AllowAnyHeader()
                .AllowAnyMethod()
                .WithExposedHeaders("X-MiniOmni-Instance", "Retry-After")
                .SetPreflightMaxAge(TimeSpan.FromMinutes(10)));
        });

        // ASP.NET Core's own host filtering (its middleware runs first in every WebApplication); a top-level AllowedHosts wins.
        services.AddOptions<HostFilteringOptions>().Configure<IOptions<MiniOmniServerOptions>, IConfiguration>((filtering, options, configuration) =>
        {
            if (string.IsNullOrEmpty(configuration["AllowedHosts"]))
            {
                filtering.AllowedHosts = BrowserOrigins.AllowedHosts(options.Value.Browsers, configuration);
            }
        });
    }
}

/// <summary>Refuses an API request that a page from a foreign origin sent (a WebSocket has no CORS: the browser opens it for any page).</summary>
internal sealed class BrowserOriginMiddleware(RequestDelegate next, IOptions<MiniOmniServerOptions> options, ILogger<BrowserOriginMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        string? origin = context.Request.Headers.Origin;
        if (origin is not null && context.Request.Path.StartsWithSegments("/v1")
            && !BrowserOrigins.IsAllowed(options.Value.Browsers, origin, context.Request.Host.Value))
        {
            logger.LogWarning("Refused {Method} {Path} from a page at {Origin}.", context.Request.Method, context.Request.Path, origin);
            await new Api.ApiError(403, $"Pages from {origin} may not use this server; allow the origin with MiniOmni:Browsers:AllowedOrigins.",
                "invalid_request_error", null, "origin_not_allowed").WriteAsync(context, 1).ConfigureAwait(false);
            return;
        }

        await next(context).ConfigureAwait(false);
    }
}
