using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// The hub's HTTP API as huggingface_hub uses it: <c>api/models/{repo}/revision/{revision}</c> resolves a branch or tag
/// to its commit, <c>api/models/{repo}/tree/{commit}</c> lists sizes and hashes, <c>{repo}/resolve/{commit}/{file}</c>
/// serves the content (LFS files redirect to a CDN, which the client follows without the token). 408, 429 and 5xx
/// answers are retried with backoff and the server's Retry-After; downloads ask for the raw bytes
/// (<c>Accept-Encoding: identity</c>), go to <c>{blob}.incomplete</c>, resume with a Range request, and are checked
/// before they are moved into place.
/// </summary>
internal sealed class HubClient(ResolvedStoreOptions options, HttpClient? httpClient)
{
    private const int BufferSize = 1 << 20;

    /// <summary>The most an API answer (a revision, a page of a listing) may hold; the hub's are a few hundred kilobytes.</summary>
    private const int MaxJsonBytes = 32 << 20;

    /// <summary>The most pages a listing may have: the hub pages up to a thousand entries at a time, and these repositories hold a handful of files.</summary>
    private const int MaxListingPages = 100;

    private static readonly Lazy<HttpClient> SharedClient = new(() => new HttpClient(new SocketsHttpHandler
    {
        ConnectTimeout = TimeSpan.FromSeconds(30),
        PooledConnectionLifetime = TimeSpan.FromMinutes(10),

        // Sizes and hashes are of the raw bytes, and a Range must not land in a compressed body.
        AutomaticDecompression = DecompressionMethods.None,
    })
    {
        // Multi-gigabyte bodies outlive any whole-request timeout; stalls are caught per read instead.
        Timeout = Timeout.InfiniteTimeSpan,
    });

    private static readonly ProductInfoHeaderValue UserAgent = new("MiniOmni.SK",
        typeof(HubClient).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0");

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly HttpClient _http = httpClient ?? SharedClient.Value;
    private readonly ILogger _logger = options.Logger;

    /// <summary>What to do instead when the hub cannot be used; ends every network error.</summary>
    public const string LocalFilesAdvice =
        "To use files you already have instead, convert them with `miniomni convert --checkpoint DIR --whisper FILE-OR-DIR --snac DIR --out MODEL-DIR` "
        + "and pass `--model MODEL-DIR` (in code: ModelConverter.Convert, then load MODEL-DIR).";

    public Uri RevisionUri(string repository, string revision) =>
        new(options.Endpoint, $"api/models/{repository}/revision/{Uri.EscapeDataString(revision)}");

    public Uri TreeUri(string repository, string commit) =>
        new(options.Endpoint, $"api/models/{repository}/tree/{Uri.EscapeDataString(commit)}");

    public Uri ResolveUri(string repository, string commit, string file) =>
        new(options.Endpoint, $"{repository}/resolve/{Uri.EscapeDataString(commit)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>
    /// The commit <paramref name="revision"/> (a branch, tag or short commit) names now. As huggingface_hub's metadata
    /// request, it waits <c>HF_HUB_ETAG_TIMEOUT</c> (10 s) for an answer and a network failure is not retried, so that
    /// the caller falls back on the cache's ref promptly; a 429 or 5xx answer is retried as any other.
    /// </summary>
    public async Task<string> ResolveCommitAsync(string repository, string revision, CancellationToken cancellationToken)
    {
        Uri uri = RevisionUri(repository, revision);
        using var response = await SendAsync(uri, new HubRetries(options.Retry), repository, $"resolve revision '{revision}' of {repository}", rawBytes: false, range: null, retryNetworkFailures: false, cancellationToken).ConfigureAwait(false);
        RevisionInfo? info;
        try
        {
            info = await ReadJsonAsync<RevisionInfo>(response, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw NotAHub(uri, $"its answer for revision '{revision}' of {repository} could not be read ({e.Message})", e);
        }
        catch (Exception e) when (IsNetworkFailure(e, cancellationToken))
        {
            throw Unreachable(uri, $"could not resolve revision '{revision}' of {repository}", e);
        }

        string? commit = info?.Sha?.ToLowerInvariant();
        return commit is not null && HubRepositoryCache.IsCommit(commit)
            ? commit
            : throw NotAHub(uri, $"its answer for revision '{revision}' of {repository} holds no commit id (\"sha\")", null);
    }

    /// <summary>The files at the top of <paramref name="repository"/> at <paramref name="commit"/>, by path.</summary>
    public async Task<IReadOnlyDictionary<string, HubFile>> ListAsync(string repository, string commit, CancellationToken cancellationToken)
    {
        var files = new Dictionary<string, HubFile>(StringComparer.Ordinal);
        Uri? page = TreeUri(repository, commit);
        for (int pages = 1; page is not null; pages++)
        {
            if (pages > MaxListingPages)
            {
                throw NotAHub(page, $"its listing of {repository} goes on for more than {MaxListingPages} pages", null);
            }

            using var response = await SendAsync(page, new HubRetries(options.Retry), repository, $"list {repository}", rawBytes: false, range: null, retryNetworkFailures: true, cancellationToken).ConfigureAwait(false);
            List<TreeEntry>? entries;
            try
            {
                entries = await ReadJsonAsync<List<TreeEntry>>(response, cancellationToken).ConfigureAwait(false);
            }
            catch (JsonException e)
            {
                throw NotAHub(page, $"its listing of {repository} could not be read ({e.Message})", e);
            }
            catch (Exception e) when (IsNetworkFailure(e, cancellationToken))
            {
                throw Unreachable(page, $"could not list {repository}", e);
            }

            foreach (var entry in entries ?? [])
            {
                if (entry.Type != "file" || entry.Path is null)
                {
                    continue;
                }

                var file = entry.Lfs is { } lfs
                    ? new HubFile(entry.Path, lfs.Size, lfs.Oid?.ToLowerInvariant(), entry.Oid?.ToLowerInvariant())
                    : new HubFile(entry.Path, entry.Size, null, entry.Oid?.ToLowerInvariant());
                if (!file.IsValid)
                {
                    throw NotAHub(page, $"its listing of {repository} gives {entry.Path} no usable size and hash", null);
                }

                files[entry.Path] = file;
            }

            page = NextPage(response, page);
        }

        return files;
    }

    /// <summary>
    /// Downloads <paramref name="file"/> to <paramref name="destination"/>: resumes the <c>.incomplete</c> left by an
    /// earlier attempt, retries interrupted transfers, checks size and hash, and only then moves it into place.
    /// </summary>
    /// <param name="repository">The repository, <c>owner/name</c>.</param>
    /// <param name="commit">The commit the file is fetched at.</param>
    /// <param name="file">The file, with the size and hash it must have.</param>
    /// <param name="destination">Where the checked file goes.</param>
    /// <param name="report">Told the bytes of the file on disk so far.</param>
    /// <param name="cancellationToken">Stops the download; the incomplete file stays for the next attempt.</param>
    public async Task DownloadAsync(string repository, string commit, HubFile file, string destination, Action<long> report, CancellationToken cancellationToken)
    {
        Uri url = ResolveUri(repository, commit, file.Path);
        string subject = $"{repository}/{file.Path}";
        string partial = destination + ".incomplete";
        bool resumesEarlierRun = File.Exists(partial) && new FileInfo(partial).Length > 0;
        if (resumesEarlierRun)
        {
            _logger.LogInformation("Resuming {File} from byte {Offset}.", subject, new FileInfo(partial).Length);
        }

        var retries = new HubRetries(options.Retry);
        while (true)
        {
            await TransferWithRetriesAsync(url, subject, file, partial, retries, report, cancellationToken).ConfigureAwait(false);
            string? fault = await CheckAsync(partial, file, cancellationToken).ConfigureAwait(false);
            if (fault is null)
            {
                break;
            }

            File.Delete(partial);
            if (resumesEarlierRun)
            {
                // The earlier run's bytes may have been damaged on disk: start over once.
                _logger.LogWarning("{File} resumed from an earlier run is corrupt ({Fault}); downloading it afresh.", subject, fault);
                resumesEarlierRun = false;
                continue;
            }

            throw new ModelFileException(url.ToString(),
                $"the download of {subject} is corrupt: {fault}. It was deleted; run again to fetch it afresh (a proxy that alters downloads causes this too).");
        }

        File.Move(partial, destination, overwrite: true);
        _logger.LogInformation("Downloaded and checked {File} ({Bytes} bytes).", subject, file.Size);
    }

    /// <summary>Checks a file against the listing; null when it matches, else what is wrong.</summary>
    public static async Task<string?> CheckAsync(string path, HubFile file, CancellationToken cancellationToken)
    {
        long length = new FileInfo(path).Length;
        if (length != file.Size)
        {
            return $"it has {length} bytes where the hub lists {file.Size}";
        }

        using var hash = IncrementalHash.CreateHash(file.Sha256 is null ? HashAlgorithmName.SHA1 : HashAlgorithmName.SHA256);
        if (file.Sha256 is null)
        {
            hash.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
            int read;
            while ((read = await stream.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken).ConfigureAwait(false)) > 0)
            {
                hash.AppendData(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        string expected = file.BlobHash;
        return actual.Equals(expected, StringComparison.OrdinalIgnoreCase)
            ? null
            : file.Sha256 is null
                ? $"its git blob id is {actual} where the hub lists {expected}"
                : $"its SHA-256 is {actual} where the hub lists {expected}";
    }

    /// <summary>Whether an error of this client means the hub could not be reached or kept failing (not that it refused).</summary>
    public static bool IsUnavailable(ModelFileException e) => e.InnerException switch
    {
        HttpRequestException http => http.StatusCode is null || HubRetries.IsRetryable(http.StatusCode.Value),
        IOException or TimeoutException or OperationCanceledException => true,
        _ => false,
    };

    private async Task TransferWithRetriesAsync(Uri url, string subject, HubFile file, string partial, HubRetries retries, Action<long> report, CancellationToken cancellationToken)
    {
        while (true)
        {
            long before = Length(partial);
            try
            {
                await TransferAsync(url, subject, file, partial, retries, report, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (IsNetworkFailure(e, cancellationToken))
            {
                long offset = Length(partial);
                if (offset > before)
                {
                    // As huggingface_hub: a transfer that made progress earns its tries back.
                    retries.ResetTries();
                }

                if (!retries.TryPlanNext(null, out var pause, out string whyNot))
                {
                    throw Unreachable(url, $"the download of {subject} failed after {whyNot} (kept {offset} of {file.Size} bytes in {partial}; running again resumes there)", e);
                }

                _logger.LogWarning("Download of {File} interrupted at byte {Offset} ({Reason}); resuming in {Delay:F1} s (try {Try} of {Tries}).",
                    subject, offset, e.Message, pause.TotalSeconds, retries.Tries + 1, HubRetries.MaxTries);
                await retries.WaitAsync(pause, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task TransferAsync(Uri url, string subject, HubFile file, string partial, HubRetries retries, Action<long> report, CancellationToken cancellationToken)
    {
        long offset = Length(partial);
        if (offset > file.Size)
        {
            File.Delete(partial);
            offset = 0;
        }

        report(offset);
        if (offset == file.Size)
        {
            return;
        }

        using var response = await SendAsync(url, retries, subject, $"download {subject}", rawBytes: true,
            offset > 0 ? new RangeHeaderValue(offset, null) : null, retryNetworkFailures: true, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            File.Delete(partial);
            throw new TransferInterruptedException($"the server refused to resume at byte {offset}; starting over");
        }

        if (response.Content.Headers.ContentEncoding.Any(e => !e.Equals("identity", StringComparison.OrdinalIgnoreCase)))
        {
            throw new ModelFileException(url.ToString(),
                $"{subject}: the server sent the file encoded as {string.Join(", ", response.Content.Headers.ContentEncoding)} although asked for the raw bytes (Accept-Encoding: identity); "
                + "sizes and hashes are of the raw bytes, so it cannot be checked. A proxy that compresses downloads causes this; bypass it or use another HF_ENDPOINT.");
        }

        bool resumes = offset > 0 && response.StatusCode == HttpStatusCode.PartialContent;
        if (resumes && response.Content.Headers.ContentRange?.From != offset)
        {
            File.Delete(partial);
            throw new TransferInterruptedException($"asked for bytes from {offset} but got {response.Content.Headers.ContentRange}; starting over");
        }

        if (offset > 0 && !resumes)
        {
            _logger.LogInformation("{Url} ignored the Range request; downloading {File} from the start.", url, subject);
            offset = 0;
            report(0);
        }

        bool oversized = false;
        await using (var output = new FileStream(partial, resumes ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1, FileOptions.Asynchronous))
        await using (var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false))
        using (var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            try
            {
                while (true)
                {
                    int read = await ReadAsync(body, buffer, stall, cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    if (offset + read > file.Size)
                    {
                        oversized = true;
                        break;
                    }

                    try
                    {
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    }
                    catch (IOException e)
                    {
                        throw new ModelFileException(partial, $"could not write the download of {subject} ({e.Message}); the bytes so far are kept and the next run resumes there.", innerException: e);
                    }

                    offset += read;
                    report(offset);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        if (oversized)
        {
            File.Delete(partial);
            throw new ModelFileException(url.ToString(), $"the server sent more than the {file.Size} bytes the hub lists for {subject}; the download was deleted.");
        }

        if (offset < file.Size)
        {
            throw new TransferInterruptedException($"the connection ended after {offset} of {file.Size} bytes");
        }
    }

    /// <summary>
    /// Sends a GET until it is answered with success (or 416, which the caller handles): transient statuses and network
    /// failures are retried with <paramref name="retries"/>; any other status is an error naming <paramref name="subject"/>.
    /// </summary>
    /// <param name="uri">The address.</param>
    /// <param name="retries">The tries and waits of this request (a download shares one across its resumptions).</param>
    /// <param name="subject">What errors name: the repository, or the repository and file.</param>
    /// <param name="doing">What the request does, for errors: "list gpt-omni/mini-omni".</param>
    /// <param name="rawBytes">A file download: ask for the bytes as stored, not compressed.</param>
    /// <param name="range">The Range to ask for, if resuming.</param>
    /// <param name="retryNetworkFailures">Retry when no answer comes (false: fail at once, after the metadata timeout).</param>
    /// <param name="cancellationToken">Stops the request and any wait.</param>
    private async Task<HttpResponseMessage> SendAsync(Uri uri, HubRetries retries, string subject, string doing, bool rawBytes, RangeHeaderValue? range, bool retryNetworkFailures, CancellationToken cancellationToken)
    {
        while (true)
        {
            HttpResponseMessage response;
            using (var request = CreateRequest(uri, rawBytes, range))
            {
                try
                {
                    response = await SendOnceAsync(request, retryNetworkFailures ? options.StallTimeout : options.MetadataTimeout, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (IsNetworkFailure(e, cancellationToken))
                {
                    if (!retryNetworkFailures || !retries.TryPlanNext(null, out var wait, out string whyNot))
                    {
                        throw Unreachable(uri, retryNetworkFailures ? $"could not {doing} ({retries.Tries} tries)" : $"could not {doing}", e);
                    }

                    _logger.LogWarning("Could not {Doing} ({Reason}); trying again in {Delay:F1} s (try {Try} of {Tries}).",
                        doing, e.Message, wait.TotalSeconds, retries.Tries + 1, HubRetries.MaxTries);
                    await retries.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
                    continue;
                }
            }

            if (response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return response;
            }

            TimeSpan pause;
            using (response)
            {
                if (!HubRetries.IsRetryable(response.StatusCode))
                {
                    throw Refused(uri, subject, response);
                }

                var asked = HubRetries.RequestedDelay(response, options.Retry.Clock);
                if (!retries.TryPlanNext(asked, out pause, out string whyNot))
                {
                    throw GaveUp(uri, subject, response, whyNot);
                }

                _logger.LogWarning("{Subject}: the hub answered {Status} {Reason}{Asked}; trying again in {Delay:F1} s (try {Try} of {Tries}).",
                    subject, (int)response.StatusCode, response.ReasonPhrase, asked is { } a ? $" and asks to wait {a.TotalSeconds:F0} s" : "",
                    pause.TotalSeconds, retries.Tries + 1, HubRetries.MaxTries);
            }

            await retries.WaitAsync(pause, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<HttpResponseMessage> SendOnceAsync(HttpRequestMessage request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stall.CancelAfter(timeout);
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {timeout.TotalSeconds:0.#} s");
        }
    }

    private async Task<int> ReadAsync(Stream body, byte[] buffer, CancellationTokenSource stall, CancellationToken cancellationToken)
    {
        stall.CancelAfter(options.StallTimeout);
        try
        {
            return await body.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, BufferSize)), stall.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"nothing received for {options.StallTimeout.TotalSeconds:0.#} s");
        }
    }

    private HttpRequestMessage CreateRequest(Uri uri, bool rawBytes, RangeHeaderValue? range)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.UserAgent.Add(UserAgent);
        if (options.Token is { } token)
        {
            // HttpClient drops this header when it follows a redirect, so the token never reaches the CDN.
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value);
        }

        if (rawBytes)
        {
            // As huggingface_hub: the listed size and hash are of the raw bytes, and a Range must count raw bytes.
            // The header survives the redirect to the CDN.
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
        }

        request.Headers.Range = range;
        return request;
    }

    /// <summary>An API answer as <typeparamref name="T"/>, read whole but never beyond <see cref="MaxJsonBytes"/>, nor stalled beyond the stall timeout.</summary>
    private async Task<T?> ReadJsonAsync<T>(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > MaxJsonBytes)
        {
            throw new JsonException($"the answer has {response.Content.Headers.ContentLength} bytes, more than the {MaxJsonBytes} an answer may hold");
        }

        using var buffer = new MemoryStream();
        await using (var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false))
        {
            byte[] chunk = new byte[81920];
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            int read;
            while ((read = await ReadAsync(body, chunk, stall, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > MaxJsonBytes)
                {
                    throw new JsonException($"the answer goes on beyond the {MaxJsonBytes} bytes an answer may hold");
                }

                buffer.Write(chunk, 0, read);
            }
        }

        buffer.Position = 0;
        return JsonSerializer.Deserialize<T>(buffer, Json);
    }

    private static long Length(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    private static Uri? NextPage(HttpResponseMessage response, Uri current)
    {
        // GitHub-style pagination: Link: <https://...&cursor=...>; rel="next"
        if (!response.Headers.TryGetValues("Link", out var links))
        {
            return null;
        }

        foreach (string link in links.SelectMany(l => l.Split(',')))
        {
            string[] parts = link.Split(';');
            string target = parts[0].Trim();
            if (target.StartsWith('<') && target.EndsWith('>') && parts.Skip(1).Any(p => p.Trim().Replace(" ", "", StringComparison.Ordinal) is "rel=\"next\"" or "rel=next"))
            {
                return new Uri(current, target[1..^1]);
            }
        }

        return null;
    }

    private static bool IsNetworkFailure(Exception e, CancellationToken cancellationToken) => e switch
    {
        HttpRequestException http => http.StatusCode is null || HubRetries.IsRetryable(http.StatusCode.Value),
        IOException or TimeoutException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };

    private ModelFileException NotAHub(Uri url, string what, Exception? e) =>
        new(url.ToString(), $"{what}; is {options.Endpoint} a Hugging Face hub? {LocalFilesAdvice}", innerException: e);

    private ModelFileException Unreachable(Uri url, string what, Exception e)
    {
        string cause = e is HttpRequestException http
            ? http.HttpRequestError switch
            {
                HttpRequestError.NameResolutionError => $"the name {url.Host} could not be resolved",
                HttpRequestError.ConnectionError => http.InnerException is SocketException socket
                    ? $"no connection to {url.Authority}: {socket.Message}"
                    : $"no connection to {url.Authority}",
                HttpRequestError.SecureConnectionError => $"the TLS connection to {url.Authority} failed ({http.InnerException?.Message ?? http.Message})",
                HttpRequestError.ProxyTunnelError => $"the proxy refused the tunnel to {url.Authority}",
                _ => http.Message,
            }
            : e.Message;
        return new ModelFileException(url.ToString(),
            $"{what}: {cause}. Check the network and any proxy (HTTPS_PROXY), point HF_ENDPOINT at a reachable mirror, "
            + $"or set HF_HUB_OFFLINE=1 to use only what the cache holds. {LocalFilesAdvice}",
            innerException: e);
    }

    private ModelFileException GaveUp(Uri url, string subject, HttpResponseMessage response, string whyNot)
    {
        string answer = $"the hub answered {(int)response.StatusCode} {response.ReasonPhrase}{HubSays(response)}";
        return new ModelFileException(url.ToString(),
            $"{subject}: {answer}; gave up after {whyNot}. Try again later, point HF_ENDPOINT at a mirror, or set HF_HUB_OFFLINE=1 to use only what the cache holds. {LocalFilesAdvice}",
            innerException: new HttpRequestException(answer, null, response.StatusCode));
    }

    private ModelFileException Refused(Uri url, string subject, HttpResponseMessage response)
    {
        string answer = $"the hub answered {(int)response.StatusCode} {response.ReasonPhrase}{HubSays(response)}";
        string repository = string.Join('/', subject.Split('/').Take(2));
        string errorCode = response.Headers.TryGetValues("X-Error-Code", out var codes) ? codes.FirstOrDefault() ?? "" : "";
        string reason = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden when options.Token is null =>
                $"{repository} is private or gated (the hub also answers so for a repository that does not exist); accept its terms on the hub and set HF_TOKEN to an access token (or log in with `hf auth login`).",
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                $"{options.Token} is invalid or has no access to {repository}; check the token and that its terms are accepted on the hub.",
            HttpStatusCode.NotFound when errorCode == "RevisionNotFound" =>
                $"{repository} has no such revision at {options.Endpoint}; check --revision.",
            HttpStatusCode.NotFound when errorCode == "EntryNotFound" =>
                $"{repository} has no such file at that revision.",
            HttpStatusCode.NotFound =>
                $"the repository {repository}, its revision or the file does not exist at {options.Endpoint}; check --revision and HF_ENDPOINT.",
            _ => $"the hub at {options.Endpoint} could not serve {subject}.",
        };
        return new ModelFileException(url.ToString(), $"{subject}: {answer}: {reason} {LocalFilesAdvice}",
            innerException: new HttpRequestException(answer, null, response.StatusCode));
    }

    private static string HubSays(HttpResponseMessage response) =>
        response.Headers.TryGetValues("X-Error-Message", out var values) ? $" (\"{string.Join(" ", values)}\")" : "";

    /// <summary>A transfer that stopped short and may be resumed.</summary>
    private sealed class TransferInterruptedException(string message) : IOException(message);

    private sealed record RevisionInfo(string? Sha);

    private sealed record TreeEntry(string? Type, string? Path, string? Oid, long Size, LfsInfo? Lfs);

    private sealed record LfsInfo(string? Oid, long Size);
}
