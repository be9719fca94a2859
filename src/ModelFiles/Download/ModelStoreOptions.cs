using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// Where <see cref="ModelStore"/> keeps models and how it reaches the Hugging Face hub. Every setting left unset
/// falls back to the environment variable the Hugging Face tools use, then to the hub's own default.
/// </summary>
public sealed class ModelStoreOptions
{
    /// <summary>The hub everyone reaches unless <c>HF_ENDPOINT</c> or <see cref="Endpoint"/> says otherwise.</summary>
    public static Uri DefaultEndpoint { get; } = new("https://huggingface.co");

    /// <summary>
    /// The cache root. Unset: <c>MINIOMNI_CACHE</c>; else <c>%LOCALAPPDATA%\miniomni</c> on Windows and
    /// <c>$XDG_CACHE_HOME/miniomni</c> or <c>~/.cache/miniomni</c> elsewhere.
    /// </summary>
    public string? CacheDirectory { get; set; }

    /// <summary>The hub (or a mirror of it). Unset: <c>HF_ENDPOINT</c>, else https://huggingface.co.</summary>
    public Uri? Endpoint { get; set; }

    /// <summary>A Hugging Face access token, sent as a bearer token. Unset: <c>HF_TOKEN</c>; public models need none.</summary>
    public string? Token { get; set; }

    /// <summary>The branch, tag or commit of the Mini-Omni repository; Whisper and SNAC come from their main branches.</summary>
    public string Revision { get; set; } = "main";

    /// <summary>Never touch the network: only what the cache holds. Unset: <c>HF_HUB_OFFLINE</c> (1, true, yes or on).</summary>
    public bool? Offline { get; set; }

    /// <summary>The weight type of the converted model.</summary>
    public ModelFileType FileType { get; set; } = ModelFileType.Q8_0;

    /// <summary>
    /// The client for every request (proxies, handlers, tests); it must follow redirects, as the hub sends LFS files
    /// from a CDN. Unset: a shared client of the store's own.
    /// </summary>
    public HttpClient? HttpClient { get; set; }

    /// <summary>Where downloads and conversions are logged.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>Reads the environment; tests substitute their own so they never depend on the machine's.</summary>
    internal Func<string, string?> EnvironmentVariables { get; set; } = Environment.GetEnvironmentVariable;

    /// <summary>The pause before the first retry of an interrupted transfer; each further retry waits twice as long.</summary>
    internal TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a transfer may receive nothing before it counts as interrupted.</summary>
    internal TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The settings in force: every unset value filled from the environment or the defaults.</summary>
    internal ResolvedStoreOptions Resolve()
    {
        string? Variable(string name) => EnvironmentVariables(name) is { Length: > 0 } value ? value : null;

        string cache = CacheDirectory ?? Variable("MINIOMNI_CACHE") ?? PlatformCacheDirectory(Variable);
        Uri endpoint = Endpoint ?? ParseEndpoint(Variable("HF_ENDPOINT"));
        if (!endpoint.AbsoluteUri.EndsWith('/'))
        {
            // Relative addresses resolve under a mirror's path prefix only when the base ends in a slash.
            endpoint = new Uri(endpoint.AbsoluteUri + "/");
        }

        if (string.IsNullOrWhiteSpace(Revision))
        {
            throw new ArgumentException("The revision is empty; use a branch, tag or commit of gpt-omni/mini-omni (main by default).", nameof(Revision));
        }

        return new ResolvedStoreOptions(
            Path.GetFullPath(cache),
            endpoint,
            Token ?? Variable("HF_TOKEN"),
            Revision,
            Offline ?? IsTrue(Variable("HF_HUB_OFFLINE")),
            FileType,
            Logger ?? NullLogger.Instance,
            RetryDelay,
            StallTimeout);
    }

    private static string PlatformCacheDirectory(Func<string, string?> variable)
    {
        if (OperatingSystem.IsWindows())
        {
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "miniomni");
        }

        // The XDG spec asks to ignore a relative XDG_CACHE_HOME.
        if (variable("XDG_CACHE_HOME") is { } xdg && Path.IsPathRooted(xdg))
        {
            return Path.Combine(xdg, "miniomni");
        }

        string home = variable("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".cache", "miniomni");
    }

    private static Uri ParseEndpoint(string? value)
    {
        if (value is null)
        {
            return DefaultEndpoint;
        }

        return Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? uri
            : throw new ArgumentException($"HF_ENDPOINT '{value}' is not an http(s) address such as https://huggingface.co.");
    }

    // The values huggingface_hub accepts, so one HF_HUB_OFFLINE serves both tools.
    private static bool IsTrue(string? value) =>
        value is not null && (value.Equals("1", StringComparison.Ordinal)
            || value.Equals("true", StringComparison.OrdinalIgnoreCase)
            || value.Equals("yes", StringComparison.OrdinalIgnoreCase)
            || value.Equals("on", StringComparison.OrdinalIgnoreCase));
}

/// <summary>The options with nothing left unset.</summary>
internal sealed record ResolvedStoreOptions(
    string CacheDirectory,
    Uri Endpoint,
    string? Token,
    string Revision,
    bool Offline,
    ModelFileType FileType,
    ILogger Logger,
    TimeSpan RetryDelay,
    TimeSpan StallTimeout);
