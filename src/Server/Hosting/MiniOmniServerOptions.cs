using System.Net;
using Microsoft.Extensions.Options;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>The server's settings: section <c>MiniOmni</c> of appsettings.json, <c>MiniOmni__*</c> environment variables or <c>--MiniOmni:*</c> arguments.</summary>
public sealed class MiniOmniServerOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "MiniOmni";

    /// <summary>A model directory, or a model name (<c>mini-omni</c>) fetched and converted into the cache at start. <c>--model</c> sets it.</summary>
    public string Model { get; set; } = "";

    /// <summary>The model cache (default: <c>MINIOMNI_CACHE</c>, else the user's cache folder).</summary>
    public string? Cache { get; set; }

    /// <summary>Use only what the cache holds; never download.</summary>
    public bool Offline { get; set; }

    /// <summary>
    /// The key clients send as <c>Authorization: Bearer KEY</c> (or, from a browser's WebSocket, as the subprotocol
    /// <c>openai-insecure-api-key.KEY</c>). Required when the server listens anywhere but loopback.
    /// </summary>
    public string? ApiKey { get; set; }

    /// <summary>Engine threads (default: llama.cpp's choice, the physical cores).</summary>
    public int? Threads { get; set; }

    /// <summary>Cache positions shared by the answers decoded together.</summary>
    public uint ContextSize { get; set; } = 8192;

    /// <summary>Answers decoded together, one decode per step for all of them.</summary>
    public int MaxConcurrentAnswers { get; set; } = 4;

    /// <summary>Whether ggml and llama.cpp may use a GPU when the installed backend has one.</summary>
    public bool UseGpu { get; set; } = true;

    /// <summary>
    /// The Linux nice value of the engine's compute threads (0 to 19; 0 leaves them as they are; see MiniOmniEngineOptions.ComputeNiceness). Above 0 the decode work gives
    /// way to the server's own threads, so health checks, new connections and other sessions' audio are not starved
    /// while llama.cpp keeps every core busy.
    /// </summary>
    public int EngineNiceness { get; set; } = 5;

    /// <summary>How spoken questions are encoded: Exact (Whisper's whole 30 s window, as the release) or Fast (only the audio's frames; much quicker first audio, slightly different features).</summary>
    public MiniOmni.SK.Speech.EncoderMode EncoderMode { get; set; } = MiniOmni.SK.Speech.EncoderMode.Exact;

    /// <summary>Transcribe each spoken realtime turn (Mini-Omni's ASR task, after its answer) so later turns and the client see it as text.</summary>
    public bool TranscribeRealtimeSpeech { get; set; } = true;

    /// <summary>
    /// Decode each realtime session's next preamble (instructions and history) while its user speaks, so each answer decodes
    /// only its own question (see MiniOmniRealtimeClientOptions.PrefillHistoryAhead).
    /// </summary>
    public bool PrefillRealtimeHistoryAhead { get; set; } = true;

    /// <summary>Which web pages may use the server, the hosts it answers to, ephemeral keys and /metrics (section <c>MiniOmni:Browsers</c>).</summary>
    public BrowserAccessOptions Browsers { get; set; } = new();

    /// <summary>The limits every request is held to.</summary>
    public ServerLimits Limits { get; set; } = new();

    /// <summary>A thinker that writes the answers Mini-Omni speaks (<c>MiniOmni:Thinker</c>); unset, Mini-Omni answers itself.</summary>
    public ThinkerSettings Thinker { get; set; } = new();
}

/// <summary>
/// A thinker: an OpenAI-compatible chat completions endpoint whose model writes every answer, which Mini-Omni hears and
/// speaks as it streams, on the page, <c>/v1/chat/completions</c> and <c>/v1/realtime</c> alike. Configured under
/// <c>MiniOmni:Thinker</c>; its key is read from an environment variable, never from the settings.
/// </summary>
public sealed class ThinkerSettings
{
    /// <summary>The endpoint's base address (for example <c>http://127.0.0.1:11434/v1/</c>); unset, there is no thinker.</summary>
    public string? Endpoint { get; set; }

    /// <summary>The thinker's model, as the endpoint names it.</summary>
    public string? Model { get; set; }

    /// <summary>The environment variable that holds the endpoint's API key (none needed when it is unset or empty).</summary>
    public string ApiKeyVariable { get; set; } = "MINIOMNI_THINKER_API_KEY";

    /// <summary>Whether a thinker is configured.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(Endpoint);
}

/// <summary>What one request or session may ask of the server; each configurable under <c>MiniOmni:Limits</c>.</summary>
public sealed class ServerLimits
{
    /// <summary>The largest request body (JSON or an upload), in bytes; over it: 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 25 * 1024 * 1024;

    /// <summary>The longest question audio in a chat, in seconds (Mini-Omni hears at most 30); over it: 400.</summary>
    public double MaxAudioSeconds { get; set; } = 30;

    /// <summary>The longest recording to transcribe, in seconds; it is cut into windows of at most 30 s. Over it: 413.</summary>
    public double MaxTranscriptionSeconds { get; set; } = 1800;

    /// <summary>The most messages in one chat request (history included); over it: 413.</summary>
    public int MaxMessages { get; set; } = 64;

    /// <summary>The most characters of text in one request (all messages, or the text to speak); over it: 413.</summary>
    public int MaxTextCharacters { get; set; } = 16384;

    /// <summary>The most tokens one answer may generate; requests asking for more, or for no limit, get this many.</summary>
    public int MaxAnswerTokens { get; set; } = 2048;

    /// <summary>HTTP answers (chat, transcription, speech) waiting for an answer slot; beyond them: 429 with Retry-After.</summary>
    public int MaxQueuedAnswers { get; set; } = 16;

    /// <summary>Realtime WebSocket sessions open at once; beyond them: 429.</summary>
    public int MaxRealtimeSessions { get; set; } = 8;

    /// <summary>The Retry-After, in seconds, sent with 429 and 503.</summary>
    public int RetryAfterSeconds { get; set; } = 5;

    /// <summary>Messages a realtime session holds for a client that reads slowly; the answer waits while they are unread.</summary>
    public int RealtimeOutboundMessages { get; set; } = 128;

    /// <summary>How long a realtime client may leave a full queue unread before its session is closed with an error.</summary>
    public double RealtimeStallSeconds { get; set; } = 15;

    /// <summary>How long a realtime session may go without any client message or pong before it is closed.</summary>
    public double RealtimeIdleSeconds { get; set; } = 300;
}

/// <summary>Checks the settings at start, naming the one that is wrong.</summary>
internal sealed class MiniOmniServerOptionsValidator(IConfiguration configuration) : IValidateOptions<MiniOmniServerOptions>
{
    public ValidateOptionsResult Validate(string? name, MiniOmniServerOptions options)
    {
        var errors = new List<string>();
        var limits = options.Limits;
        if (string.IsNullOrWhiteSpace(options.Model))
        {
            errors.Add("MiniOmni:Model is not set: pass --model mini-omni (downloaded and converted on first use) or --model DIR (a model directory).");
        }

        void Check(bool ok, string message)
        {
            if (!ok)
            {
                errors.Add(message);
            }
        }

        Check(options.MaxConcurrentAnswers is >= 1 and <= 64, $"MiniOmni:MaxConcurrentAnswers is {options.MaxConcurrentAnswers}; it must be 1 to 64.");
        Check(options.ContextSize >= 512, $"MiniOmni:ContextSize is {options.ContextSize}; it must be at least 512 positions.");
        Check(options.EngineNiceness is >= 0 and <= 19, $"MiniOmni:EngineNiceness is {options.EngineNiceness}; it must be 0 to 19.");
        Check(options.Threads is null or >= 1, $"MiniOmni:Threads is {options.Threads}; it must be at least 1, or unset.");
        var thinker = options.Thinker;
        if (thinker.Enabled)
        {
            Check(Uri.TryCreate(thinker.Endpoint, UriKind.Absolute, out var endpoint) && endpoint.Scheme is "http" or "https",
                $"MiniOmni:Thinker:Endpoint is '{thinker.Endpoint}'; it must be an absolute http or https address, such as http://127.0.0.1:11434/v1/.");
            Check(!string.IsNullOrWhiteSpace(thinker.Model), "MiniOmni:Thinker:Model is not set: name the thinker's model (MiniOmni:Thinker:Endpoint is set).");
        }

        Check(limits.MaxRequestBodyBytes >= 1024, $"MiniOmni:Limits:MaxRequestBodyBytes is {limits.MaxRequestBodyBytes}; it must be at least 1024.");
        Check(limits.MaxAudioSeconds is > 0 and <= 30, $"MiniOmni:Limits:MaxAudioSeconds is {limits.MaxAudioSeconds}; it must be over 0 and at most 30 (Mini-Omni hears 30 s).");
        Check(limits.MaxTranscriptionSeconds > 0 && limits.MaxTranscriptionSeconds <= Audio.AudioInputOptions.LongestAudio.TotalSeconds,
            $"MiniOmni:Limits:MaxTranscriptionSeconds is {limits.MaxTranscriptionSeconds}; it must be over 0 and at most {Audio.AudioInputOptions.LongestAudio.TotalSeconds}.");
        Check(limits.MaxMessages >= 1, $"MiniOmni:Limits:MaxMessages is {limits.MaxMessages}; it must be at least 1.");
        Check(limits.MaxTextCharacters >= 1, $"MiniOmni:Limits:MaxTextCharacters is {limits.MaxTextCharacters}; it must be at least 1.");
        Check(limits.MaxAnswerTokens >= 1, $"MiniOmni:Limits:MaxAnswerTokens is {limits.MaxAnswerTokens}; it must be at least 1.");
        Check(limits.MaxQueuedAnswers >= 0, $"MiniOmni:Limits:MaxQueuedAnswers is {limits.MaxQueuedAnswers}; it must be 0 or more.");
        Check(limits.MaxRealtimeSessions >= 1, $"MiniOmni:Limits:MaxRealtimeSessions is {limits.MaxRealtimeSessions}; it must be at least 1.");
        Check(limits.RetryAfterSeconds >= 1, $"MiniOmni:Limits:RetryAfterSeconds is {limits.RetryAfterSeconds}; it must be at least 1.");
        Check(limits.RealtimeOutboundMessages >= 16, $"MiniOmni:Limits:RealtimeOutboundMessages is {limits.RealtimeOutboundMessages}; it must be at least 16.");
        Check(limits.RealtimeStallSeconds > 0, $"MiniOmni:Limits:RealtimeStallSeconds is {limits.RealtimeStallSeconds}; it must be over 0.");
        Check(limits.RealtimeIdleSeconds > 0, $"MiniOmni:Limits:RealtimeIdleSeconds is {limits.RealtimeIdleSeconds}; it must be over 0.");

        Check(options.Browsers.EphemeralKeySeconds is >= EphemeralKeys.MinSeconds and <= EphemeralKeys.MaxSeconds,
            $"MiniOmni:Browsers:EphemeralKeySeconds is {options.Browsers.EphemeralKeySeconds}; it must be {EphemeralKeys.MinSeconds} to {EphemeralKeys.MaxSeconds}.");
        Check(options.Browsers.MaxEphemeralKeys >= 1, $"MiniOmni:Browsers:MaxEphemeralKeys is {options.Browsers.MaxEphemeralKeys}; it must be at least 1.");
        foreach (string origin in options.Browsers.AllowedOrigins)
        {
            Check(origin == "*" || (Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath == "/"),
                $"MiniOmni:Browsers:AllowedOrigins has '{origin}'; give origins as scheme://host[:port] (https://app.example.com), or *.");
        }

        if (string.IsNullOrEmpty(options.ApiKey))
        {
            foreach (string url in ListenUrls(configuration))
            {
                if (!IsLoopback(url))
                {
                    errors.Add($"The server would listen on {url}, which is reachable from other machines, without an API key: set MiniOmni:ApiKey " +
                        "(or MiniOmni__ApiKey) so that clients must send it, or listen on loopback (http://localhost:5000, http://127.0.0.1:PORT).");
                }
            }
        }
        else if (options.ApiKey.Length < 16)
        {
            errors.Add("MiniOmni:ApiKey is shorter than 16 characters; use a long random key (e.g. `openssl rand -hex 32`).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>Every URL the server is configured to listen on: <c>urls</c> (--urls, ASPNETCORE_URLS) and Kestrel's endpoints.</summary>
    public static IEnumerable<string> ListenUrls(IConfiguration configuration)
    {
        foreach (string url in (configuration["urls"] ?? string.Empty).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            yield return url;
        }

        foreach (var endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { Length: > 0 } url)
            {
                yield return url;
            }
        }

        foreach (string? port in new[] { configuration["http_ports"], configuration["https_ports"] }.Where(p => !string.IsNullOrEmpty(p)))
        {
            yield return $"http://*:{port}";
        }
    }

    /// <summary>Whether <paramref name="url"/> listens on this machine's loopback interface only.</summary>
    public static bool IsLoopback(string url)
    {
        // Kestrel's wildcards ("*", "+") are not valid URI hosts; they listen everywhere.
        var match = System.Text.RegularExpressions.Regex.Match(url, @"^[a-zA-Z]+://(\[[^\]]*\]|[^:/]*)");
        string host = match.Success ? match.Groups[1].Value.Trim('[', ']') : url;
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address));
    }
}
