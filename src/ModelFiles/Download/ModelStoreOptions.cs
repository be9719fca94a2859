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

    /// <summary>
    /// A Hugging Face access token, sent as a bearer token. Unset, as huggingface_hub: <c>HF_TOKEN</c>, else
    /// <c>HUGGING_FACE_HUB_TOKEN</c>, else the token file (<c>HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>, else
    /// <c>~/.cache/huggingface/token</c>), unless <c>HF_HUB_DISABLE_IMPLICIT_TOKEN</c> is set. Line breaks and
    /// surrounding blanks are removed. Public models need none.
    /// </summary>
    public string? Token { get; set; }

    /// <summary>The branch, tag or commit of the Mini-Omni repository; Whisper and SNAC come from their main branches.</summary>
    public string Revision { get; set; } = "main";

    /// <summary>
    /// Never touch the network: only what the cache holds. Unset: <c>HF_HUB_OFFLINE</c>, else
    /// <c>TRANSFORMERS_OFFLINE</c> (1, true, yes or on).
    /// </summary>
    public bool? Offline { get; set; }

    /// <summary>The weight type of the converted model.</summary>
    public ModelFileType FileType { get; set; } = ModelFileType.Q8_0;

    /// <summary>
    /// The client for every request (proxies, handlers, tests); it must follow redirects, as the hub sends LFS files
    /// from a CDN, and must not decompress bodies itself. Unset: a shared client of the store's own.
    /// </summary>
    public HttpClient? HttpClient { get; set; }

    /// <summary>Where downloads and conversions are logged.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>Reads the environment; tests substitute their own so they never depend on the machine's.</summary>
    internal Func<string, string?> EnvironmentVariables { get; set; } = Environment.GetEnvironmentVariable;

    /// <summary>The pause before the first retry (of a refused or interrupted request); each further retry waits up to twice as long.</summary>
    internal TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest pause between two tries that the store chooses itself (a server's Retry-After may ask for more).</summary>
    internal TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>The most one request waits, over all its retries, before the store gives up on it.</summary>
    internal TimeSpan MaxRetryWait { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Waits before a retry; tests substitute one that records the pause and returns at once.</summary>
    internal Func<TimeSpan, CancellationToken, Task> Sleep { get; set; } = Task.Delay;

    /// <summary>The clock an HTTP-date <c>Retry-After</c> is measured against.</summary>
    internal TimeProvider Clock { get; set; } = TimeProvider.System;

    /// <summary>How long a transfer may receive nothing before it counts as interrupted. Unset: <c>HF_HUB_DOWNLOAD_TIMEOUT</c>, else 60 s.</summary>
    internal TimeSpan? StallTimeout { get; set; }

    /// <summary>How long the revision request waits for an answer. Unset: <c>HF_HUB_ETAG_TIMEOUT</c>, else 10 s (huggingface_hub's default).</summary>
    internal TimeSpan? MetadataTimeout { get; set; }

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

        var logger = Logger ?? NullLogger.Instance;

        // As huggingface_hub: the first variable that is set wins, even when it says "0".
        bool offline = Offline ?? IsTrue(Variable("HF_HUB_OFFLINE") ?? Variable("TRANSFORMERS_OFFLINE"));
        return new ResolvedStoreOptions(
            Path.GetFullPath(cache),
            HuggingFacePaths.HubCache(Variable),
            endpoint,
            HubToken.Find(Token, Variable, logger),
            Revision.Trim(),
            offline,
            FileType,
            logger,
            new RetrySettings(RetryDelay, MaxRetryDelay, MaxRetryWait, Sleep, Clock),
            StallTimeout ?? Seconds("HF_HUB_DOWNLOAD_TIMEOUT", Variable) ?? TimeSpan.FromSeconds(60),
            MetadataTimeout ?? Seconds("HF_HUB_ETAG_TIMEOUT", Variable) ?? TimeSpan.FromSeconds(10),
            IsTrue(Variable("HF_HUB_DISABLE_SYMLINKS")));
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

        return Path.Combine(HomeDirectory(variable), ".cache", "miniomni");
    }

    /// <summary>The user's home: <c>HOME</c> where it is set (tests set it), else the platform's profile folder.</summary>
    internal static string HomeDirectory(Func<string, string?> variable) =>
        variable("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>A positive number of seconds from <paramref name="name"/>, as huggingface_hub reads its timeouts; null when unset.</summary>
    private static TimeSpan? Seconds(string name, Func<string, string?> variable) =>
        variable(name) is not { } value ? null
        : double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds) && seconds > 0 && seconds < TimeSpan.MaxValue.TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new ArgumentException($"{name} '{value}' is not a positive number of seconds.");

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

    /// <summary>The values huggingface_hub accepts as true, so one variable serves both tools.</summary>
    internal static bool IsTrue(string? value) =>
        value is not null && (value.Equals("1", StringComparison.Ordinal)
            || value.Equals("true", StringComparison.OrdinalIgnoreCase)
            || value.Equals("yes", StringComparison.OrdinalIgnoreCase)
            || value.Equals("on", StringComparison.OrdinalIgnoreCase));
}

/// <summary>How requests are retried: backoff bounds, the total wait, and the (substitutable) clock and sleep.</summary>
internal sealed record RetrySettings(
    TimeSpan BaseDelay,
    TimeSpan MaxDelay,
    TimeSpan MaxTotalWait,
    Func<TimeSpan, CancellationToken, Task> Sleep,
    TimeProvider Clock);

/// <summary>The options with nothing left unset.</summary>
internal sealed record ResolvedStoreOptions(
    string CacheDirectory,
    string HuggingFaceHubCache,
    Uri Endpoint,
    HubToken? Token,
    string Revision,
    bool Offline,
    ModelFileType FileType,
    ILogger Logger,
    RetrySettings Retry,
    TimeSpan StallTimeout,
    TimeSpan MetadataTimeout,
    bool CopyInsteadOfLinks);
