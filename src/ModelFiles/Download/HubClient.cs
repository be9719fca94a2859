using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>A file as the hub lists it: its size, and the hash it can be checked against.</summary>
/// <param name="Path">The file's path in the repository.</param>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Sha256">The SHA-256 of an LFS file (its LFS object id).</param>
/// <param name="GitBlobId">The git blob id (SHA-1 of <c>"blob {size}\0"</c> and the content) of a file kept in git itself.</param>
internal sealed record HubFile(string Path, long Size, string? Sha256, string? GitBlobId);

/// <summary>
/// Lists and downloads files of Hugging Face repositories: <c>api/models/{repo}/tree/{revision}</c> for sizes and
/// hashes, <c>{repo}/resolve/{revision}/{file}</c> for the content (LFS files redirect to a CDN, which the client follows).
/// Downloads go to <c>file.partial</c>, resume with a Range request, and are checked before they are moved into place.
/// </summary>
internal sealed class HubClient(ResolvedStoreOptions options, HttpClient? httpClient)
{
    private const int BufferSize = 1 << 20;
    private const int MaxAttempts = 5;

    private static readonly Lazy<HttpClient> SharedClient = new(() => new HttpClient(new SocketsHttpHandler
    {
        ConnectTimeout = TimeSpan.FromSeconds(30),
        PooledConnectionLifetime = TimeSpan.FromMinutes(10),
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

    public Uri TreeUri(HubSource source) =>
        new(options.Endpoint, $"api/models/{source.Repository}/tree/{Uri.EscapeDataString(source.Revision)}");

    public Uri ResolveUri(HubSource source, string file) =>
        new(options.Endpoint, $"{source.Repository}/resolve/{Uri.EscapeDataString(source.Revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>The files at the top of <paramref name="source"/>'s repository at its revision, by path.</summary>
    public async Task<IReadOnlyDictionary<string, HubFile>> ListAsync(HubSource source, CancellationToken cancellationToken)
    {
        var files = new Dictionary<string, HubFile>(StringComparer.Ordinal);
        Uri? page = TreeUri(source);
        while (page is not null)
        {
            using var request = CreateRequest(page);
            HttpResponseMessage response;
            try
            {
                response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsNetworkFailure(e, cancellationToken))
            {
                throw Unreachable(page, $"could not list {source.Repository}", e);
            }

            using (response)
            {
                if (!response.IsSuccessStatusCode)
                {
                    throw Refused(page, source, response);
                }

                List<TreeEntry>? entries;
                try
                {
                    entries = await response.Content.ReadFromJsonAsync<List<TreeEntry>>(Json, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is JsonException or IOException or HttpRequestException)
                {
                    throw new ModelFileException(page.ToString(), $"the hub's listing of {source.Repository} could not be read ({e.Message}); is {options.Endpoint} a Hugging Face hub? {LocalFilesAdvice}", innerException: e);
                }

                foreach (var entry in entries ?? [])
                {
                    if (entry.Type == "file" && entry.Path is not null)
                    {
                        files[entry.Path] = entry.Lfs is { } lfs
                            ? new HubFile(entry.Path, lfs.Size, lfs.Oid, null)
                            : new HubFile(entry.Path, entry.Size, null, entry.Oid);
                    }
                }

                page = NextPage(response, page);
            }
        }

        return files;
    }

    /// <summary>
    /// Downloads <paramref name="file"/> to <paramref name="destination"/>: resumes a <c>.partial</c> left by an
    /// earlier attempt, retries interrupted transfers, checks size and hash, and only then moves it into place.
    /// </summary>
    /// <param name="source">The repository and revision.</param>
    /// <param name="file">The file, with the size and hash it must have.</param>
    /// <param name="destination">Where the checked file goes.</param>
    /// <param name="report">Told the bytes of the file on disk so far.</param>
    /// <param name="cancellationToken">Stops the download; the partial file stays for the next attempt.</param>
    public async Task DownloadAsync(HubSource source, HubFile file, string destination, Action<long> report, CancellationToken cancellationToken)
    {
        Uri url = ResolveUri(source, file.Path);
        string partial = destination + ".partial";
        bool resumesEarlierRun = File.Exists(partial) && new FileInfo(partial).Length > 0;
        if (resumesEarlierRun)
        {
            _logger.LogInformation("Resuming {Repository}/{File} from byte {Offset}.", source.Repository, file.Path, new FileInfo(partial).Length);
        }

        while (true)
        {
            await TransferWithRetriesAsync(url, source, file, partial, report, cancellationToken).ConfigureAwait(false);
            string? fault = await CheckAsync(partial, file, cancellationToken).ConfigureAwait(false);
            if (fault is null)
            {
                break;
            }

            File.Delete(partial);
            if (resumesEarlierRun)
            {
                // The earlier run's bytes may be from an older version of the file: start over once.
                _logger.LogWarning("{Repository}/{File} resumed from an earlier run is corrupt ({Fault}); downloading it afresh.", source.Repository, file.Path, fault);
                resumesEarlierRun = false;
                continue;
            }

            throw new ModelFileException(url.ToString(),
                $"the download of {source.Repository}/{file.Path} is corrupt: {fault}. It was deleted; run again to fetch it afresh (a proxy that alters downloads causes this too).");
        }

        File.Move(partial, destination, overwrite: true);
        _logger.LogInformation("Downloaded and checked {Repository}/{File} ({Bytes} bytes).", source.Repository, file.Path, file.Size);
    }

    private async Task TransferWithRetriesAsync(Uri url, HubSource source, HubFile file, string partial, Action<long> report, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await TransferAsync(url, source, file, partial, report, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (IsNetworkFailure(e, cancellationToken) && attempt < MaxAttempts)
            {
                var delay = options.RetryDelay * Math.Pow(2, attempt - 1);
                long offset = File.Exists(partial) ? new FileInfo(partial).Length : 0;
                _logger.LogWarning("Download of {Url} interrupted at byte {Offset} ({Reason}); resuming in {Delay:F0} s (attempt {Attempt} of {Attempts}).",
                    url, offset, e.Message, delay.TotalSeconds, attempt + 1, MaxAttempts);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsNetworkFailure(e, cancellationToken))
            {
                long offset = File.Exists(partial) ? new FileInfo(partial).Length : 0;
                throw Unreachable(url, $"the download failed {MaxAttempts} times (kept {offset} of {file.Size} bytes in {partial}; running again resumes there)", e);
            }
        }
    }

    private async Task TransferAsync(Uri url, HubSource source, HubFile file, string partial, Action<long> report, CancellationToken cancellationToken)
    {
        long offset = File.Exists(partial) ? new FileInfo(partial).Length : 0;
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

        using var request = CreateRequest(url);
        if (offset > 0)
        {
            request.Headers.Range = new RangeHeaderValue(offset, null);
        }

        using var response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            File.Delete(partial);
            throw new TransferInterruptedException($"the server refused to resume at byte {offset}; starting over");
        }

        if (!response.IsSuccessStatusCode)
        {
            throw IsTransient(response.StatusCode)
                ? new HttpRequestException($"the hub answered {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode)
                : Refused(url, source, response);
        }

        bool resumes = offset > 0 && response.StatusCode == HttpStatusCode.PartialContent;
        if (resumes && response.Content.Headers.ContentRange?.From != offset)
        {
            File.Delete(partial);
            throw new TransferInterruptedException($"asked for bytes from {offset} but got {response.Content.Headers.ContentRange}; starting over");
        }

        if (offset > 0 && !resumes)
        {
            _logger.LogInformation("{Url} ignored the Range request; downloading it from the start.", url);
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
                        throw new ModelFileException(partial, $"could not write the download ({e.Message}); the bytes so far are kept and the next run resumes there.", innerException: e);
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
            throw new ModelFileException(url.ToString(), $"the server sent more than the {file.Size} bytes the hub lists for {file.Path}; the download was deleted.");
        }

        if (offset < file.Size)
        {
            throw new TransferInterruptedException($"the connection ended after {offset} of {file.Size} bytes");
        }
    }

    private async Task<int> ReadAsync(Stream body, byte[] buffer, CancellationTokenSource stall, CancellationToken cancellationToken)
    {
        stall.CancelAfter(options.StallTimeout);
        try
        {
            return await body.ReadAsync(buffer.AsMemory(0, BufferSize), stall.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"nothing received for {options.StallTimeout.TotalSeconds:F0} s");
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stall.CancelAfter(options.StallTimeout);
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {options.StallTimeout.TotalSeconds:F0} s");
        }
    }

    private HttpRequestMessage CreateRequest(Uri uri)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.UserAgent.Add(UserAgent);
        if (!string.IsNullOrEmpty(options.Token))
        {
            // HttpClient drops this header when it follows a redirect, so the token never reaches the CDN.
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.Token);
        }

        return request;
    }

    /// <summary>Checks the finished download against the listing; null when it matches, else what is wrong.</summary>
    private static async Task<string?> CheckAsync(string partial, HubFile file, CancellationToken cancellationToken)
    {
        long length = new FileInfo(partial).Length;
        if (length != file.Size)
        {
            return $"it has {length} bytes where the hub lists {file.Size}";
        }

        if (file.Sha256 is null && file.GitBlobId is null)
        {
            return null;
        }

        using var hash = IncrementalHash.CreateHash(file.Sha256 is null ? HashAlgorithmName.SHA1 : HashAlgorithmName.SHA256);
        if (file.Sha256 is null)
        {
            hash.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            await using var stream = new FileStream(partial, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
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
        string expected = file.Sha256 ?? file.GitBlobId!;
        return actual.Equals(expected, StringComparison.OrdinalIgnoreCase)
            ? null
            : file.Sha256 is null
                ? $"its git blob id is {actual} where the hub lists {expected}"
                : $"its SHA-256 is {actual} where the hub lists {expected}";
    }

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

    private static bool IsTransient(HttpStatusCode status) =>
        (int)status >= 500 || status is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout;

    private static bool IsNetworkFailure(Exception e, CancellationToken cancellationToken) => e switch
    {
        HttpRequestException http => http.StatusCode is null || IsTransient(http.StatusCode.Value),
        IOException or TimeoutException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };

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

    private ModelFileException Refused(Uri url, HubSource source, HttpResponseMessage response)
    {
        string hubSays = response.Headers.TryGetValues("X-Error-Message", out var values) ? $" (\"{string.Join(" ", values)}\")" : "";
        string answer = $"the hub answered {(int)response.StatusCode} {response.ReasonPhrase}{hubSays}";
        string repository = source.Repository;
        string reason = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden when string.IsNullOrEmpty(options.Token) =>
                $"{repository} is private or gated (the hub also answers so for a repository that does not exist); accept its terms on the hub and set HF_TOKEN to an access token.",
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                $"the token (HF_TOKEN) is invalid or has no access to {repository}; check the token and that its terms are accepted on the hub.",
            HttpStatusCode.NotFound =>
                $"the repository {repository}, its revision or the file does not exist at {options.Endpoint}; check --revision and HF_ENDPOINT.",
            _ => $"the hub at {options.Endpoint} could not serve {repository}.",
        };
        return new ModelFileException(url.ToString(), $"{answer}: {reason} {LocalFilesAdvice}",
            innerException: new HttpRequestException(answer, null, response.StatusCode));
    }

    /// <summary>A transfer that stopped short and may be resumed.</summary>
    private sealed class TransferInterruptedException(string message) : IOException(message);

    private sealed record TreeEntry(string? Type, string? Path, string? Oid, long Size, LfsInfo? Lfs);

    private sealed record LfsInfo(string? Oid, long Size);
}
