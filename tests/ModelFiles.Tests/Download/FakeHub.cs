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
/// A Hugging Face hub on loopback (Kestrel) serving the tiny-a fixture in the hub's layout: the tree API
/// (paginated with a Link header), <c>/{repo}/resolve/{revision}/{file}</c> (LFS files answer 302 to a CDN path
/// with X-Linked-Size and X-Linked-Etag, as the hub does), Range requests, and bearer tokens. Faults are switched on
/// per file, and every request is recorded.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    public const string Revision = "main";

    private readonly WebApplication _app;
    private readonly Dictionary<string, Dictionary<string, HostedFile>> _repositories;
    private readonly ConcurrentDictionary<string, long> _dropOnceAfter = new();
    private readonly ConcurrentDictionary<string, bool> _corrupt = new();

    private FakeHub(WebApplication app, Dictionary<string, Dictionary<string, HostedFile>> repositories)
    {
        _app = app;
        _repositories = repositories;
    }

    public sealed record HostedFile(string Repository, string Path, byte[] Content, bool Lfs)
    {
        public string Sha256 { get; } = Convert.ToHexStringLower(SHA256.HashData(Content));

        public string GitBlobId { get; } = Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {Content.Length}\0"), .. Content]));
    }

    /// <param name="Path">The request path (resolve or CDN).</param>
    /// <param name="File">The hosted file the request reached, if any.</param>
    /// <param name="BytesSent">Body bytes written before the response ended.</param>
    public sealed record Request(string Path, string? Range, string? Authorization, int Status, HostedFile? File, long BytesSent);

    public Uri Endpoint { get; private set; } = null!;

    /// <summary>When set, the tree and resolve endpoints answer 401 unless this bearer token comes with the request.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Answer Range requests with the whole file and 200, as some proxies do.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>Entries per page of the tree listing (the hub's is larger; small pages exercise the Link header).</summary>
    public int PageSize { get; set; } = 2;

    public ConcurrentQueue<Request> Requests { get; } = new();

    public IEnumerable<HostedFile> Files => _repositories.Values.SelectMany(r => r.Values);

    public HostedFile File(string repository, string path) => _repositories[repository][path];

    /// <summary>The content requests of <paramref name="file"/> that reached its bytes (the resolve of a plain file, the CDN of an LFS one).</summary>
    public IReadOnlyList<Request> ContentRequests(HostedFile file) => [.. Requests.Where(r => r.File == file && r.Status is 200 or 206)];

    /// <summary>The next transfer of the file stops after <paramref name="bytes"/> body bytes and the connection is dropped.</summary>
    public void DropOnceAfter(HostedFile file, long bytes) => _dropOnceAfter[file.Sha256] = bytes;

    /// <summary>Takes the file out of its repository, as a later commit could.</summary>
    public void Remove(HostedFile file) => _repositories[file.Repository].Remove(file.Path);

    /// <summary>Serve the file with every byte flipped: the right size, the wrong content.</summary>
    public void Corrupt(HostedFile file) => _corrupt[file.Sha256] = true;

    /// <summary>Starts a hub holding the fixture as gpt-omni/mini-omni, openai/whisper-small and hubertsiuzdak/snac_24khz.</summary>
    public static async Task<FakeHub> StartAsync()
    {
        var repositories = new Dictionary<string, Dictionary<string, HostedFile>>();
        void Host(string repository, string path, byte[] content, bool lfs)
        {
            if (!repositories.TryGetValue(repository, out var files))
            {
                repositories[repository] = files = new Dictionary<string, HostedFile>();
            }

            files[path] = new HostedFile(repository, path, content, lfs);
        }

        foreach (string name in new[] { "lit_model.pth", "tokenizer.json" })
        {
            Host("gpt-omni/mini-omni", name, System.IO.File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, name)), lfs: true);
        }

        foreach (string name in new[] { "model_config.yaml", "tokenizer_config.json" })
        {
            Host("gpt-omni/mini-omni", name, System.IO.File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, name)), lfs: false);
        }

        Host("gpt-omni/mini-omni", "README.md", "# Mini-Omni\n"u8.ToArray(), lfs: false);
        var (whisperConfig, whisperWeights) = WhisperAsHuggingFace();
        Host("openai/whisper-small", "config.json", whisperConfig, lfs: false);
        Host("openai/whisper-small", "model.safetensors", whisperWeights, lfs: true);
        Host("hubertsiuzdak/snac_24khz", "config.json", System.IO.File.ReadAllBytes(Path.Combine(Fixture.Snac, "config.json")), lfs: false);
        Host("hubertsiuzdak/snac_24khz", "pytorch_model.bin", System.IO.File.ReadAllBytes(Path.Combine(Fixture.Snac, "pytorch_model.bin")), lfs: true);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var hub = new FakeHub(app, repositories);
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
        string[] parts = path.Trim('/').Split('/');
        if (parts is ["cdn", var sha])
        {
            // Signed CDN addresses need no token.
            var file = Files.FirstOrDefault(f => f.Sha256 == sha);
            await (file is null ? Answer(context, 404, "EntryNotFound", "No such object.") : ServeAsync(context, file));
        }
        else if (parts is ["api", "models", var owner, var name, "tree", var revision])
        {
            await (Refuse(context, $"{owner}/{name}") ?? ListAsync(context, $"{owner}/{name}", Uri.UnescapeDataString(revision)));
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

    /// <summary>Records the answer before any of it is sent, so a client that has read it finds it recorded.</summary>
    private void Record(HttpContext context, HostedFile? file = null, long bytes = 0) =>
        Requests.Enqueue(new Request(context.Request.Path.Value ?? "/", context.Request.Headers.Range.FirstOrDefault(),
            context.Request.Headers.Authorization.FirstOrDefault(), context.Response.StatusCode, file, bytes));

    private Task ResolveAsync(HttpContext context, string repository, string revision, string filePath)
    {
        if (revision != Revision)
        {
            return Answer(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
        }

        if (!_repositories[repository].TryGetValue(filePath, out var file))
        {
            return Answer(context, 404, "EntryNotFound", $"{filePath} does not exist on \"{Revision}\"");
        }

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
        if (revision != Revision)
        {
            await Answer(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }

        var entries = _repositories[repository].Values.OrderBy(f => f.Path, StringComparer.Ordinal).Select(f => f.Lfs
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
