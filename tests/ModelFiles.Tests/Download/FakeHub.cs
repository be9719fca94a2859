using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Tests.Checkpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

/// <summary>
/// A Hugging Face hub on loopback (Kestrel) serving the tiny-a fixture in the hub's layout, with commits: the revision
/// API (<c>/api/models/{repo}/revision/{rev}</c> answers the commit a branch names), the tree API at a branch or commit
/// (paginated with a Link header), <c>/{repo}/resolve/{rev}/{file}</c> (LFS files answer 302 to a CDN path with
/// X-Linked-Size and X-Linked-Etag, as the hub does), Range requests, and bearer tokens. <see cref="Push"/> makes a new
/// commit on main; faults are switched on per file or per path, and every request is recorded.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    public const string Branch = "main";

    /// <summary>A fault <see cref="Fail"/> can give instead of a status: no answer at all.</summary>
    public const int NoAnswer = 0;

    private readonly WebApplication _app;
    private readonly Dictionary<string, HostedRepository> _repositories;
    private readonly ConcurrentDictionary<string, long> _dropOnceAfter = new();
    private readonly ConcurrentDictionary<string, bool> _corrupt = new();
    private readonly ConcurrentQueue<Fault> _faults = new();
    private readonly object _gate = new();
    private int _commits;

    private FakeHub(WebApplication app, Dictionary<string, HostedRepository> repositories)
    {
        _app = app;
        _repositories = repositories;
    }

    public sealed record HostedFile(string Repository, string Path, byte[] Content, bool Lfs)
    {
        public string Sha256 { get; } = Convert.ToHexStringLower(SHA256.HashData(Content));

        public string GitBlobId { get; } = Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {Content.Length}\0"), .. Content]));

        /// <summary>The name huggingface_hub gives its blob: the SHA-256 of an LFS file, else the git blob id.</summary>
        public string BlobHash => Lfs ? Sha256 : GitBlobId;
    }

    /// <param name="Path">The request path (API, resolve or CDN).</param>
    /// <param name="Range">The Range header, if any.</param>
    /// <param name="Authorization">The Authorization header, if any.</param>
    /// <param name="AcceptEncoding">The Accept-Encoding header, if any.</param>
    /// <param name="Status">The status answered.</param>
    /// <param name="File">The hosted file the request reached, if any.</param>
    /// <param name="BytesSent">Body bytes written before the response ended.</param>
    public sealed record Request(string Path, string? Range, string? Authorization, string? AcceptEncoding, int Status, HostedFile? File, long BytesSent);

    /// <summary>An answer given instead of the real one, <see cref="Remaining"/> more times, to requests whose path matches.</summary>
    private sealed class Fault(Func<string, bool> matches, int times, int status, IReadOnlyDictionary<string, string> headers, byte[]? body)
    {
        public byte[]? Body { get; } = body;

        public Func<string, bool> Matches { get; } = matches;

        public int Remaining = times;

        public int Status { get; } = status;

        public IReadOnlyDictionary<string, string> Headers { get; } = headers;
    }

    private sealed class HostedRepository
    {
        public Dictionary<string, Dictionary<string, HostedFile>> Commits { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string> Branches { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, HostedFile> Head => Commits[Branches[Branch]];
    }

    public Uri Endpoint { get; private set; } = null!;

    /// <summary>When set, the API and resolve endpoints answer 401 unless this bearer token comes with the request.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Answer Range requests with the whole file and 200, as some proxies do.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>Compress file bodies with gzip whatever the client accepts, as a misbehaving proxy might.</summary>
    public bool ForceGzip { get; set; }

    /// <summary>Entries per page of the tree listing (the hub's is larger; small pages exercise the Link header).</summary>
    public int PageSize { get; set; } = 2;

    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>Every file on main of every repository.</summary>
    public IEnumerable<HostedFile> Files { get { lock (_gate) { return [.. _repositories.Values.SelectMany(r => r.Head.Values)]; } } }

    /// <summary>The files conversion reads (and the optional tokenizer_config.json): all but the README.</summary>
    public IEnumerable<HostedFile> WantedFiles => Files.Where(f => f.Path != "README.md");

    /// <summary>The file at the head of main.</summary>
    public HostedFile File(string repository, string path) { lock (_gate) { return _repositories[repository].Head[path]; } }

    /// <summary>The commit main names now.</summary>
    public string Commit(string repository) { lock (_gate) { return _repositories[repository].Branches[Branch]; } }

    /// <summary>The content requests of <paramref name="file"/> that reached its bytes (the resolve of a plain file, the CDN of an LFS one).</summary>
    public IReadOnlyList<Request> ContentRequests(HostedFile file) => [.. Requests.Where(r => r.File == file && r.Status is 200 or 206)];

    /// <summary>The requests to the revision API.</summary>
    public IReadOnlyList<Request> RevisionRequests => [.. Requests.Where(r => r.Path.Contains("/revision/", StringComparison.Ordinal))];

    /// <summary>The next transfer of the file stops after <paramref name="bytes"/> body bytes and the connection is dropped.</summary>
    public void DropOnceAfter(HostedFile file, long bytes) => _dropOnceAfter[file.Sha256] = bytes;

    /// <summary>Serve the file with every byte flipped: the right size, the wrong content.</summary>
    public void Corrupt(HostedFile file) => _corrupt[file.Sha256] = true;

    /// <summary>The next <paramref name="times"/> requests whose path <paramref name="matches"/> are answered <paramref name="status"/> with these headers (and this body).</summary>
    public void Fail(Func<string, bool> matches, int times, int status, IReadOnlyDictionary<string, string>? headers = null, byte[]? body = null) =>
        _faults.Enqueue(new Fault(matches, times, status, headers ?? new Dictionary<string, string>(), body));

    /// <summary>A new commit on main of <paramref name="repository"/> with <paramref name="path"/> set to <paramref name="content"/> (removed when null); returns its id.</summary>
    public string Push(string repository, string path, byte[]? content, bool lfs = false)
    {
        lock (_gate)
        {
            var hosted = _repositories[repository];
            var files = new Dictionary<string, HostedFile>(hosted.Head, StringComparer.Ordinal);
            if (content is null)
            {
                files.Remove(path);
            }
            else
            {
                files[path] = new HostedFile(repository, path, content, lfs);
            }

            string commit = NewCommitId(repository);
            hosted.Commits[commit] = files;
            hosted.Branches[Branch] = commit;
            return commit;
        }
    }

    /// <summary>Starts a hub holding the fixture as gpt-omni/mini-omni, openai/whisper-small and hubertsiuzdak/snac_24khz, one commit each.</summary>
    public static async Task<FakeHub> StartAsync()
    {
        var files = new List<HostedFile>();
        foreach (string name in new[] { "lit_model.pth", "tokenizer.json" })
        {
            files.Add(new("gpt-omni/mini-omni", name, System.IO.File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, name)), Lfs: true));
        }

        foreach (string name in new[] { "model_config.yaml", "tokenizer_config.json" })
        {
            files.Add(new("gpt-omni/mini-omni", name, System.IO.File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, name)), Lfs: false));
        }

        files.Add(new("gpt-omni/mini-omni", "README.md", "# Mini-Omni\n"u8.ToArray(), Lfs: false));
        var (whisperConfig, whisperWeights) = WhisperAsHuggingFace();
        files.Add(new("openai/whisper-small", "config.json", whisperConfig, Lfs: false));
        files.Add(new("openai/whisper-small", "model.safetensors", whisperWeights, Lfs: true));
        files.Add(new("hubertsiuzdak/snac_24khz", "config.json", System.IO.File.ReadAllBytes(Path.Combine(Fixture.Snac, "config.json")), Lfs: false));
        files.Add(new("hubertsiuzdak/snac_24khz", "pytorch_model.bin", System.IO.File.ReadAllBytes(Path.Combine(Fixture.Snac, "pytorch_model.bin")), Lfs: true));

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var hub = new FakeHub(app, []);
        foreach (var repository in files.GroupBy(f => f.Repository))
        {
            var hosted = new HostedRepository();
            string commit = hub.NewCommitId(repository.Key);
            hosted.Commits[commit] = repository.ToDictionary(f => f.Path, StringComparer.Ordinal);
            hosted.Branches[Branch] = commit;
            hub._repositories[repository.Key] = hosted;
        }

        app.Run(hub.HandleAsync);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        hub.Endpoint = new Uri(address.TrimEnd('/') + "/");
        return hub;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private string NewCommitId(string repository) =>
        Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes($"{repository}#{Interlocked.Increment(ref _commits)}")));

    /// <summary>The fixture's openai whisper.pt as the hub's openai/whisper-small holds it: encoder weights under transformers names, and config.json.</summary>
    private static (byte[] Config, byte[] Weights) WhisperAsHuggingFace()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        using var openAi = TorchCheckpoint.Open(Fixture.Whisper);
        using var dims = WhisperCheckpoint.Open(Fixture.Whisper);
        string weights = TestCheckpoints.WriteSafetensors(Path.Combine(directory.Path, "model.safetensors"),
            openAi.Tensors.Where(t => t.Key.StartsWith("encoder.", StringComparison.Ordinal))
                .Select(t => (WhisperCheckpoint.ToHuggingFaceName(t.Key), "F32", t.Value.Shape.ToArray(), TestCheckpoints.Floats(t.Value.ReadFloat32()))));
        byte[] config = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["model_type"] = "whisper",
            ["num_mel_bins"] = dims.Dims.NMels,
            ["max_source_positions"] = dims.Dims.NAudioCtx,
            ["d_model"] = dims.Dims.NAudioState,
            ["encoder_attention_heads"] = dims.Dims.NAudioHead,
            ["encoder_layers"] = dims.Dims.NAudioLayer,
        });
        return (config, System.IO.File.ReadAllBytes(weights));
    }

    private async Task HandleAsync(HttpContext context)
    {
        string path = context.Request.Path.Value ?? "/";
        if (_faults.FirstOrDefault(f => f.Remaining > 0 && f.Matches(path)) is { } fault && Interlocked.Decrement(ref fault.Remaining) >= 0)
        {
            if (fault.Status == NoAnswer)
            {
                // Holds the request until the client gives up (bounded, so the server always stops by itself).
                Record(context);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                }

                return;
            }

            foreach (var (name, value) in fault.Headers)
            {
                context.Response.Headers[name] = value;
            }

            if (fault.Body is { } body)
            {
                context.Response.StatusCode = fault.Status;
                context.Response.ContentType = "application/json";
                Record(context);
                await context.Response.Body.WriteAsync(body);
                return;
            }

            await Answer(context, fault.Status, "Fault", $"fault {fault.Status}");
            return;
        }

        string[] parts = path.Trim('/').Split('/');
        if (parts is ["cdn", var sha])
        {
            // Signed CDN addresses need no token.
            HostedFile? file;
            lock (_gate)
            {
                file = _repositories.Values.SelectMany(r => r.Commits.Values).SelectMany(c => c.Values).FirstOrDefault(f => f.Sha256 == sha);
            }

            await (file is null ? Answer(context, 404, "EntryNotFound", "No such object.") : ServeAsync(context, file));
        }
        else if (parts is ["api", "models", var owner, var name, "revision", var revision])
        {
            await (Refuse(context, $"{owner}/{name}") ?? RevisionAsync(context, $"{owner}/{name}", Uri.UnescapeDataString(revision)));
        }
        else if (parts is ["api", "models", var treeOwner, var treeName, "tree", var treeRevision])
        {
            await (Refuse(context, $"{treeOwner}/{treeName}") ?? ListAsync(context, $"{treeOwner}/{treeName}", Uri.UnescapeDataString(treeRevision)));
        }
        else if (parts.Length >= 5 && parts[2] == "resolve")
        {
            string repository = $"{parts[0]}/{parts[1]}";
            await (Refuse(context, repository) ?? ResolveAsync(context, repository, Uri.UnescapeDataString(parts[3]), string.Join('/', parts[4..].Select(Uri.UnescapeDataString))));
        }
        else
        {
            await Answer(context, 404, "RepoNotFound", "Repository not found");
        }
    }

    /// <summary>The commit and files a branch or full commit id names, or null.</summary>
    private (string Commit, Dictionary<string, HostedFile> Files)? At(string repository, string revision)
    {
        lock (_gate)
        {
            var hosted = _repositories[repository];
            string? commit = hosted.Branches.TryGetValue(revision, out string? head) ? head : hosted.Commits.ContainsKey(revision) ? revision : null;
            return commit is null ? null : (commit, hosted.Commits[commit]);
        }
    }

    /// <summary>Records the answer before any of it is sent, so a client that has read it finds it recorded.</summary>
    private void Record(HttpContext context, HostedFile? file = null, long bytes = 0) =>
        Requests.Enqueue(new Request(context.Request.Path.Value ?? "/", context.Request.Headers.Range.FirstOrDefault(),
            context.Request.Headers.Authorization.FirstOrDefault(), context.Request.Headers.AcceptEncoding.FirstOrDefault(),
            context.Response.StatusCode, file, bytes));

    private Task RevisionAsync(HttpContext context, string repository, string revision)
    {
        if (At(repository, revision) is not { } at)
        {
            return Answer(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
        }

        Record(context);
        return context.Response.WriteAsJsonAsync(new
        {
            _id = "0123456789abcdef01234567",
            id = repository,
            sha = at.Commit,
            lastModified = "2024-09-01T00:00:00.000Z",
            siblings = at.Files.Keys.Order(StringComparer.Ordinal).Select(f => new { rfilename = f }),
        });
    }

    private Task ResolveAsync(HttpContext context, string repository, string revision, string filePath)
    {
        if (At(repository, revision) is not { } at)
        {
            return Answer(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
        }

        if (!at.Files.TryGetValue(filePath, out var file))
        {
            return Answer(context, 404, "EntryNotFound", $"{filePath} does not exist on \"{revision}\"");
        }

        context.Response.Headers["X-Repo-Commit"] = at.Commit;
        if (!file.Lfs)
        {
            context.Response.Headers.ETag = $"\"{file.GitBlobId}\"";
            return ServeAsync(context, file);
        }

        context.Response.StatusCode = 302;
        context.Response.Headers.Location = new Uri(Endpoint, $"cdn/{file.Sha256}").ToString();
        context.Response.Headers["X-Linked-Size"] = file.Content.Length.ToString();
        context.Response.Headers["X-Linked-Etag"] = $"\"{file.Sha256}\"";
        context.Response.Headers.ETag = $"\"{file.Sha256}\"";
        Record(context);
        return Task.CompletedTask;
    }

    private Task? Refuse(HttpContext context, string repository) =>
        RequiredToken is not null && context.Request.Headers.Authorization.FirstOrDefault() != $"Bearer {RequiredToken}"
            ? Answer(context, 401, "GatedRepo", $"Access to model {repository} is restricted. You must have access to it and be authenticated to access it.")
            : _repositories.ContainsKey(repository) ? null : Answer(context, 404, "RepoNotFound", "Repository not found");

    private async Task ListAsync(HttpContext context, string repository, string revision)
    {
        if (At(repository, revision) is not { } at)
        {
            await Answer(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }

        var entries = at.Files.Values.OrderBy(f => f.Path, StringComparer.Ordinal).Select(f => f.Lfs
            ? (object)new { type = "file", oid = f.GitBlobId, size = f.Content.Length, path = f.Path, lfs = new { oid = f.Sha256, size = f.Content.Length, pointerSize = 134 } }
            : new { type = "file", oid = f.GitBlobId, size = f.Content.Length, path = f.Path }).ToList();
        int start = int.TryParse(context.Request.Query["cursor"], out int cursor) ? cursor : 0;
        if (start + PageSize < entries.Count)
        {
            context.Response.Headers["Link"] = $"<{Endpoint}api/models/{repository}/tree/{revision}?cursor={start + PageSize}>; rel=\"next\"";
        }

        Record(context);
        await context.Response.WriteAsJsonAsync(entries.Skip(start).Take(PageSize).ToList());
    }

    private async Task ServeAsync(HttpContext context, HostedFile file)
    {
        byte[] content = _corrupt.ContainsKey(file.Sha256) ? [.. file.Content.Select(b => (byte)~b)] : file.Content;
        if (ForceGzip)
        {
            using var compressed = new MemoryStream();
            using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            {
                gzip.Write(content);
            }

            context.Response.Headers.ContentEncoding = "gzip";
            content = compressed.ToArray();
        }

        long start = 0;
        string? range = context.Request.Headers.Range.FirstOrDefault();
        if (!IgnoreRange && range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range["bytes=".Length..^1]);
            if (start >= content.Length)
            {
                context.Response.StatusCode = 416;
                context.Response.Headers.ContentRange = $"bytes */{content.Length}";
                Record(context, file);
                return;
            }

            context.Response.StatusCode = 206;
            context.Response.Headers.ContentRange = $"bytes {start}-{content.Length - 1}/{content.Length}";
        }

        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = content.Length - start;
        if (_dropOnceAfter.TryRemove(file.Sha256, out long dropAfter))
        {
            int count = (int)Math.Min(dropAfter, content.Length - start);
            Record(context, file, count);
            await context.Response.Body.WriteAsync(content.AsMemory((int)start, count));
            await context.Response.Body.FlushAsync();
            context.Abort();
            return;
        }

        Record(context, file, content.Length - start);
        await context.Response.Body.WriteAsync(content.AsMemory((int)start));
    }

    private Task Answer(HttpContext context, int status, string errorCode, string message)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["X-Error-Code"] = errorCode;
        context.Response.Headers["X-Error-Message"] = message;
        Record(context);
        return context.Response.WriteAsJsonAsync(new { error = message });
    }
}
