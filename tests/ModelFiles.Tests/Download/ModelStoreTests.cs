using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

/// <summary>Whole pulls against a real HTTP server on loopback that serves the fixture in the hub's layout.</summary>
public sealed class ModelStoreTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>, IAsyncLifetime
{
    private const string MiniOmni = "gpt-omni/mini-omni";
    private const string Whisper = "openai/whisper-small";

    private readonly Fixture.TemporaryDirectory _cache = Fixture.CreateTemporaryDirectory();
    private readonly ConcurrentQueue<TimeSpan> _sleeps = new();
    private readonly ListLogger _log = new();
    private FakeHub _hub = null!;

    public async Task InitializeAsync() => _hub = await FakeHub.StartAsync();

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _cache.Dispose();
    }

    [Fact]
    public async Task APullDownloadsEveryFileAtOneCommitAndConvertsThemIntoACompleteModel()
    {
        var reports = new List<DownloadProgress>();

        var model = await ModelStore.EnsureModelAsync(options: Options(), downloadProgress: new SynchronousProgress<DownloadProgress>(reports.Add));

        model.EnsureComplete();
        string commit = _hub.Commit(MiniOmni);
        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", commit, "f32"), model.Path);
        Assert.Equal(model, ModelStore.FindCachedModel(options: Options()));
        AssertSameTensors(converted.Model.BackbonePath, model.BackbonePath);
        AssertSameTensors(converted.Model.VocabularyPath, model.VocabularyPath);
        AssertSameTensors(converted.Model.AudioPath, model.AudioPath);

        foreach (var file in _hub.WantedFiles)
        {
            Assert.Equal(file.Content, File.ReadAllBytes(SnapshotPath(file)));
            Assert.Equal(file.Content, File.ReadAllBytes(Path.Combine(RepositoryFolder(file.Repository), "blobs", file.BlobHash)));
            Assert.Single(_hub.ContentRequests(file));
            Assert.Contains(reports, r => r.Repository == file.Repository && r.FileName == file.Path && r.FileBytesDone == file.Content.Length && r.FileBytes == file.Content.Length);
        }

        foreach (string repository in new[] { MiniOmni, Whisper, "hubertsiuzdak/snac_24khz" })
        {
            Assert.Equal(_hub.Commit(repository), File.ReadAllText(Path.Combine(RepositoryFolder(repository), "refs", "main")));
        }

        // Snapshots link to the blobs, and the kept listing has huggingface_hub's shape, as in its own cache.
        var weights = _hub.File(MiniOmni, "lit_model.pth");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(Path.Combine("..", "..", "blobs", weights.Sha256), new FileInfo(SnapshotPath(weights)).LinkTarget);
        }

        using (var tree = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(RepositoryFolder(MiniOmni), "trees", commit + ".json"))))
        {
            Assert.Equal(1, tree.RootElement.GetProperty("format_version").GetInt32());
            var entry = tree.RootElement.GetProperty("files").GetProperty("lit_model.pth");
            Assert.Equal(weights.Content.Length, entry.GetProperty("size").GetInt64());
            Assert.Equal(weights.GitBlobId, entry.GetProperty("blob_id").GetString());
            Assert.Equal(weights.Sha256, entry.GetProperty("lfs_sha256").GetString());
            Assert.Equal(weights.Content.Length, entry.GetProperty("lfs_size").GetInt64());
        }

        // Listed and fetched at the commit, never at the branch, so a push in between cannot mix two commits.
        Assert.All(_hub.Requests.Where(r => r.Path.Contains("/resolve/", StringComparison.Ordinal) || r.Path.Contains("/tree/", StringComparison.Ordinal)),
            r => Assert.DoesNotContain("/main", r.Path, StringComparison.Ordinal));
        Assert.Equal(3, _hub.RevisionRequests.Count);
        Assert.All(_hub.Requests.Where(r => r.File is not null), r => Assert.Equal("identity", r.AcceptEncoding));

        long total = _hub.WantedFiles.Sum(f => (long)f.Content.Length);
        Assert.All(reports, r => Assert.Equal(total, r.TotalBytes));
        Assert.Equal(total, reports[^1].BytesDone);
        Assert.Empty(Directory.EnumerateFiles(_cache.Path, "*.incomplete", SearchOption.AllDirectories));
        Assert.Empty(Directory.EnumerateDirectories(_cache.Path, "*.partial-*", SearchOption.AllDirectories));
        Assert.True(File.Exists(Path.Combine(model.Path, "sources.json")));
    }

    [Fact]
    public async Task ASecondPullRevalidatesEachRefWithOneRequestAndFetchesNothing()
    {
        var first = await ModelStore.EnsureModelAsync(options: Options());
        _hub.Requests.Clear();

        var second = await ModelStore.EnsureModelAsync(options: Options());

        Assert.Equal(first, second);
        Assert.Equal(3, _hub.Requests.Count);
        Assert.All(_hub.Requests, r => Assert.Contains("/revision/main", r.Path, StringComparison.Ordinal));
    }

    [Fact]
    public async Task APushBetweenTwoPullsIsFetchedIntoANewCommitFolderAndSharesUnchangedFiles()
    {
        var first = await ModelStore.EnsureModelAsync(options: Options());
        string before = _hub.Commit(MiniOmni);
        var oldTokenizer = _hub.File(MiniOmni, "tokenizer.json");
        string after = _hub.Push(MiniOmni, "tokenizer.json", [.. oldTokenizer.Content, .. "\n"u8], lfs: true);
        var newTokenizer = _hub.File(MiniOmni, "tokenizer.json");

        var second = await ModelStore.EnsureModelAsync(options: Options());

        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", after, "f32"), second.EnsureComplete().Path);
        first.EnsureComplete();
        Assert.NotEqual(first, second);
        Assert.Equal(after, File.ReadAllText(Path.Combine(RepositoryFolder(MiniOmni), "refs", "main")));
        Assert.Equal(newTokenizer.Content, File.ReadAllBytes(SnapshotPath(newTokenizer, after)));
        Assert.Equal(oldTokenizer.Content, File.ReadAllBytes(SnapshotPath(oldTokenizer, before)));
        Assert.Single(_hub.ContentRequests(newTokenizer));

        // Files the push left alone come from the blobs: fetched once, linked into both commits.
        var weights = _hub.File(MiniOmni, "lit_model.pth");
        Assert.Single(_hub.ContentRequests(weights));
        Assert.Equal(weights.Content, File.ReadAllBytes(SnapshotPath(weights, after)));
    }

    [Fact]
    public async Task APushToAnotherSourceThatLeavesItsFilesAloneConvertsNothingAgain()
    {
        var first = await ModelStore.EnsureModelAsync(options: Options());
        var written = File.GetLastWriteTimeUtc(first.BackbonePath);
        string after = _hub.Push(Whisper, "README.md", "# Whisper\n"u8.ToArray());
        _hub.Requests.Clear();

        var second = await ModelStore.EnsureModelAsync(options: Options());

        Assert.Equal(first, second);
        Assert.Equal(written, File.GetLastWriteTimeUtc(second.BackbonePath));
        Assert.DoesNotContain(_hub.Requests, r => r.File is not null);
        Assert.Equal(after, File.ReadAllText(Path.Combine(RepositoryFolder(Whisper), "refs", "main")));
        Assert.Contains(after, File.ReadAllText(Path.Combine(second.Path, "sources.json")));

        // Now current by commit: the next pull only revalidates.
        _hub.Requests.Clear();
        await ModelStore.EnsureModelAsync(options: Options());
        Assert.Equal(3, _hub.Requests.Count);
    }

    [Fact]
    public async Task AnInterruptedPullAfterAPushNeverMixesTheTwoCommits()
    {
        var first = await ModelStore.EnsureModelAsync(options: Options());
        string before = _hub.Commit(MiniOmni);
        var oldTokenizer = _hub.File(MiniOmni, "tokenizer.json");
        string after = _hub.Push(MiniOmni, "tokenizer.json", [.. oldTokenizer.Content, .. "\n"u8], lfs: true);
        var newTokenizer = _hub.File(MiniOmni, "tokenizer.json");
        using var interrupt = new CancellationTokenSource();
        var progress = new SynchronousProgress<DownloadProgress>(p =>
        {
            if (p.FileName == "tokenizer.json" && p.FileBytesDone > 0)
            {
                interrupt.Cancel();
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ModelStore.EnsureModelAsync(options: Options(), downloadProgress: progress, cancellationToken: interrupt.Token));

        // The ref still names the complete commit; the new one holds only what was complete, the rest waits as .incomplete.
        Assert.Equal(before, File.ReadAllText(Path.Combine(RepositoryFolder(MiniOmni), "refs", "main")));
        Assert.False(File.Exists(SnapshotPath(newTokenizer, after)));
        Assert.True(File.Exists(Path.Combine(RepositoryFolder(MiniOmni), "blobs", newTokenizer.BlobHash + ".incomplete")));
        foreach (var file in new[] { oldTokenizer, _hub.File(MiniOmni, "lit_model.pth"), _hub.File(MiniOmni, "model_config.yaml") })
        {
            Assert.Equal(file.Content, File.ReadAllBytes(SnapshotPath(file, before)));
        }

        // Offline, the last complete commit is what is used.
        _hub.Requests.Clear();
        var offline = await ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_HUB_OFFLINE"] = "1" }));
        Assert.Equal(first, offline);
        Assert.Empty(_hub.Requests);

        // Online again, the new commit is completed from where it stopped.
        var resumed = await ModelStore.EnsureModelAsync(options: Options());
        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", after, "f32"), resumed.EnsureComplete().Path);
        Assert.Equal(newTokenizer.Content, File.ReadAllBytes(SnapshotPath(newTokenizer, after)));
        Assert.StartsWith("bytes=", _hub.ContentRequests(newTokenizer)[^1].Range);
        Assert.Equal(after, File.ReadAllText(Path.Combine(RepositoryFolder(MiniOmni), "refs", "main")));
    }

    [Fact]
    public async Task A429WithRetryAfterIsWaitedForThenTheRequestSucceeds()
    {
        var weights = _hub.File(MiniOmni, "lit_model.pth");
        _hub.Fail(p => p.Contains("/tree/", StringComparison.Ordinal), 1, 429, new Dictionary<string, string> { ["Retry-After"] = "7" });
        _hub.Fail(p => p == $"/cdn/{weights.Sha256}", 1, 429, new Dictionary<string, string> { ["Retry-After"] = "3" });

        var model = await ModelStore.EnsureModelAsync(options: Options());

        model.EnsureComplete();
        Assert.Equal(2, _sleeps.Count);
        Assert.Contains(_sleeps, s => s >= TimeSpan.FromSeconds(7) && s <= TimeSpan.FromSeconds(8));
        Assert.Contains(_sleeps, s => s >= TimeSpan.FromSeconds(3) && s <= TimeSpan.FromSeconds(3.3));
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Warning && e.Text.Contains("429", StringComparison.Ordinal) && e.Text.Contains("asks to wait 3 s", StringComparison.Ordinal));
        Assert.Equal(weights.Content, File.ReadAllBytes(SnapshotPath(weights)));
    }

    [Fact]
    public async Task A503WithoutRetryAfterBacksOffWithJitterThenSucceeds()
    {
        _hub.Fail(p => p.Contains("/revision/", StringComparison.Ordinal), 3, 503);

        await ModelStore.EnsureModelAsync(options: Options());

        // Exponential backoff from 1 s, each pause between half and all of its step.
        var sleeps = _sleeps.ToArray();
        Assert.Equal(3, sleeps.Length);
        Assert.InRange(sleeps[0].TotalSeconds, 0.5, 1);
        Assert.InRange(sleeps[1].TotalSeconds, 1, 2);
        Assert.InRange(sleeps[2].TotalSeconds, 2, 4);
    }

    [Fact]
    public async Task A503ThatNeverEndsGivesUpAfterBoundedTriesNamingRepositoryFileAndStatus()
    {
        _hub.Fail(p => p.EndsWith("/model_config.yaml", StringComparison.Ordinal), 1000, 503);

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("gpt-omni/mini-omni/model_config.yaml", error.Message);
        Assert.Contains("503", error.Message);
        Assert.Equal(6, _hub.Requests.Count(r => r.Path.EndsWith("/model_config.yaml", StringComparison.Ordinal)));
        Assert.Equal(5, _sleeps.Count);
        Assert.True(_sleeps.Sum(s => s.TotalSeconds) <= 300);
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "models")));
    }

    [Fact]
    public async Task ARetryAfterBeyondTheTotalWaitFailsAtOnceSayingSo()
    {
        _hub.Fail(p => p.Contains("/tree/", StringComparison.Ordinal), 1, 429, new Dictionary<string, string> { ["Retry-After"] = "86400" });

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("gpt-omni/mini-omni", error.Message);
        Assert.Contains("429", error.Message);
        Assert.Contains("asks to wait 86400 s", error.Message);
        Assert.Empty(_sleeps);
    }

    [Theory]
    [InlineData("{\"id\":\"gpt-omni/mini-omni\"}")]
    [InlineData("{\"sha\":\"../../../../etc\"}")]
    [InlineData("<html>mirror down</html>")]
    public async Task ARevisionAnswerWithoutACommitIdIsNamedAsNotAHub(string body)
    {
        _hub.Fail(p => p.Contains("/revision/", StringComparison.Ordinal), 1, 200, body: System.Text.Encoding.UTF8.GetBytes(body));

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("revision 'main' of gpt-omni/mini-omni", error.Message);
        Assert.Contains("a Hugging Face hub?", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "hub")));
    }

    [Fact]
    public async Task AnOversizedOrEndlessListingIsRefused()
    {
        _hub.Fail(p => p.Contains("/tree/", StringComparison.Ordinal), 1, 200, body: new byte[33 << 20]);
        var oversized = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        _hub.Fail(p => p.Contains("/tree/", StringComparison.Ordinal), 200, 200,
            new Dictionary<string, string> { ["Link"] = $"<{_hub.Endpoint}api/models/gpt-omni/mini-omni/tree/x?cursor=1>; rel=\"next\"" }, "[]"u8.ToArray());
        var endless = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("33554432 bytes an answer may hold", oversized.Message);
        Assert.Contains("more than 100 pages", endless.Message);
    }

    [Fact]
    public async Task ACompressedBodyIsRefusedBecauseItsBytesCannotBeChecked()
    {
        _hub.ForceGzip = true;

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("gzip", error.Message);
        Assert.Contains("Accept-Encoding: identity", error.Message);
    }

    [Fact]
    public async Task AnInterruptedTransferResumesWithARangeRequest()
    {
        var weights = _hub.File(MiniOmni, "lit_model.pth");
        const long dropAfter = 5_000_000;
        _hub.DropOnceAfter(weights, dropAfter);

        var model = await ModelStore.EnsureModelAsync(options: Options());

        model.EnsureComplete();
        var transfers = _hub.ContentRequests(weights);
        Assert.Equal(2, transfers.Count);
        Assert.Null(transfers[0].Range);
        Assert.Equal(dropAfter, transfers[0].BytesSent);
        long resumedAt = long.Parse(transfers[1].Range!["bytes=".Length..^1]);
        Assert.InRange(resumedAt, 1, dropAfter);
        Assert.Equal(206, transfers[1].Status);
        Assert.Equal("identity", transfers[1].AcceptEncoding);
        Assert.Equal(weights.Content.Length - resumedAt, transfers[1].BytesSent);
        Assert.Equal(weights.Content, File.ReadAllBytes(SnapshotPath(weights)));
    }

    [Fact]
    public async Task AnIncompleteBlobOfAnEarlierRunIsResumedWhereItEnded()
    {
        var tokenizer = _hub.File(MiniOmni, "tokenizer.json");
        string blob = Path.Combine(RepositoryFolder(MiniOmni), "blobs", tokenizer.BlobHash);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob + ".incomplete", tokenizer.Content[..1_000_000]);

        await ModelStore.EnsureModelAsync(options: Options());

        var transfer = Assert.Single(_hub.ContentRequests(tokenizer));
        Assert.Equal("bytes=1000000-", transfer.Range);
        Assert.Equal(tokenizer.Content.Length - 1_000_000, transfer.BytesSent);
        Assert.Equal(tokenizer.Content, File.ReadAllBytes(SnapshotPath(tokenizer)));
        Assert.False(File.Exists(blob + ".incomplete"));
    }

    [Fact]
    public async Task ADamagedIncompleteBlobIsFetchedAfreshWhenTheResultDoesNotCheck()
    {
        var snac = _hub.File("hubertsiuzdak/snac_24khz", "pytorch_model.bin");
        string blob = Path.Combine(RepositoryFolder(snac.Repository), "blobs", snac.BlobHash);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob + ".incomplete", new byte[1000]);

        await ModelStore.EnsureModelAsync(options: Options());

        var transfers = _hub.ContentRequests(snac);
        Assert.Equal(["bytes=1000-", null], transfers.Select(t => t.Range));
        Assert.Equal(snac.Content, File.ReadAllBytes(SnapshotPath(snac)));
    }

    [Fact]
    public async Task AServerThatIgnoresRangeRestartsTheFileInsteadOfAppending()
    {
        var snac = _hub.File("hubertsiuzdak/snac_24khz", "pytorch_model.bin");
        string blob = Path.Combine(RepositoryFolder(snac.Repository), "blobs", snac.BlobHash);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob + ".incomplete", new byte[1000]);
        _hub.IgnoreRange = true;

        await ModelStore.EnsureModelAsync(options: Options());

        var transfer = Assert.Single(_hub.ContentRequests(snac));
        Assert.Equal("bytes=1000-", transfer.Range);
        Assert.Equal(200, transfer.Status);
        Assert.Equal(snac.Content, File.ReadAllBytes(SnapshotPath(snac)));
    }

    [Theory]
    [InlineData("hubertsiuzdak/snac_24khz", "pytorch_model.bin", "SHA-256")]
    [InlineData(MiniOmni, "model_config.yaml", "git blob id")]
    public async Task ACorruptDownloadIsNamedAndNotKept(string repository, string path, string check)
    {
        var file = _hub.File(repository, path);
        _hub.Corrupt(file);

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains($"{repository}/{path}", error.Message);
        Assert.Contains(check, error.Message);
        Assert.Contains(file.BlobHash, error.Message);
        string blob = Path.Combine(RepositoryFolder(repository), "blobs", file.BlobHash);
        Assert.False(File.Exists(blob));
        Assert.False(File.Exists(blob + ".incomplete"));
        Assert.False(File.Exists(SnapshotPath(file)));
        Assert.False(File.Exists(Path.Combine(RepositoryFolder(repository), "refs", "main")));
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "models")));
    }

    [Fact]
    public async Task HfTokenIsTrimmedAndSentAsABearerTokenToTheHubButNotToTheCdn()
    {
        _hub.RequiredToken = "hf_fixture_token";

        var model = await ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_TOKEN"] = "hf_fixture_token\r\n" }));

        model.EnsureComplete();
        var hubRequests = _hub.Requests.Where(r => !r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToList();
        var cdnRequests = _hub.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(hubRequests);
        Assert.NotEmpty(cdnRequests);
        Assert.All(hubRequests, r => Assert.Equal("Bearer hf_fixture_token", r.Authorization));
        Assert.All(cdnRequests, r => Assert.Null(r.Authorization));
    }

    [Theory]
    [InlineData("HF_HOME")]
    [InlineData("HF_TOKEN_PATH")]
    public async Task TheTokenFileOfHfAuthLoginIsUsedWhenNoVariableHoldsAToken(string variable)
    {
        _hub.RequiredToken = "hf_fixture_token";
        using var home = Fixture.CreateTemporaryDirectory();
        string tokenFile = Path.Combine(home.Path, "token");
        File.WriteAllText(tokenFile, "hf_fixture_token\n");

        var model = await ModelStore.EnsureModelAsync(options: Options(environment: new()
        {
            [variable] = variable == "HF_HOME" ? home.Path : tokenFile,
            ["HF_TOKEN"] = " \n",
        }));

        model.EnsureComplete();
        Assert.All(_hub.Requests.Where(r => !r.Path.StartsWith("/cdn/", StringComparison.Ordinal)), r => Assert.Equal("Bearer hf_fixture_token", r.Authorization));
    }

    [Fact]
    public async Task ATokenNeverAppearsInLogsOrErrors()
    {
        const string secret = "hf_SECRET_never_shown";
        _hub.RequiredToken = "hf_fixture_token";
        _hub.Fail(p => p.Contains("/revision/", StringComparison.Ordinal), 1, 503);

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_TOKEN"] = secret })));

        Assert.Contains("401", error.Message);
        Assert.Contains("the token from HF_TOKEN is invalid", error.Message);
        Assert.DoesNotContain(secret, error.ToString());
        Assert.NotEmpty(_log.Entries);
        Assert.DoesNotContain(secret, _log.AllText);
    }

    [Fact]
    public async Task ARefusedTokenlessRequestSaysToSetHfToken()
    {
        _hub.RequiredToken = "hf_fixture_token";

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("401", error.Message);
        Assert.Contains(MiniOmni, error.Message);
        Assert.Contains("HF_TOKEN", error.Message);
        Assert.Contains("miniomni convert --checkpoint", error.Message);
        Assert.Equal(HttpStatusCode.Unauthorized, Assert.IsType<HttpRequestException>(error.InnerException).StatusCode);
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "hub")));
    }

    [Fact]
    public async Task AnUnknownRevisionIsNotFound()
    {
        var options = Options();
        options.Revision = "v9";

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: options));

        Assert.Contains("404", error.Message);
        Assert.Contains("Invalid rev id: v9", error.Message);
        Assert.Contains("--revision", error.Message);
    }

    [Fact]
    public async Task ARevisionThatIsACommitIdIsUsedAsItIsWithoutARef()
    {
        string commit = _hub.Commit(MiniOmni);
        _hub.Push(MiniOmni, "README.md", "# Mini-Omni, later\n"u8.ToArray());
        var options = Options();
        options.Revision = commit;

        var model = await ModelStore.EnsureModelAsync(options: options);

        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", commit, "f32"), model.EnsureComplete().Path);
        Assert.DoesNotContain(_hub.RevisionRequests, r => r.Path.Contains(MiniOmni, StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(RepositoryFolder(MiniOmni), "refs")));
    }

    [Fact]
    public async Task TokenizerConfigIsFetchedWhenListedAndSkippedWhenAbsent()
    {
        _hub.Push(MiniOmni, "tokenizer_config.json", null);

        var model = await ModelStore.EnsureModelAsync(options: Options());

        model.EnsureComplete();
        Assert.DoesNotContain(_hub.Requests, r => r.Path.EndsWith("tokenizer_config.json", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(RepositoryFolder(MiniOmni), "snapshots", _hub.Commit(MiniOmni), "tokenizer_config.json")));

        _hub.Push(MiniOmni, "tokenizer_config.json", File.ReadAllBytes(Path.Combine(Fixture.Checkpoint, "tokenizer_config.json")));
        await ModelStore.EnsureModelAsync(options: Options());
        var config = _hub.File(MiniOmni, "tokenizer_config.json");
        Assert.Equal(config.Content, File.ReadAllBytes(SnapshotPath(config)));
    }

    [Fact]
    public async Task AFileConversionReadsThatTheCommitLacksIsNamedBeforeAnyDownload()
    {
        _hub.Push(MiniOmni, "model_config.yaml", null);

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains($"{MiniOmni} at 'main' (commit {_hub.Commit(MiniOmni)[..12]}) has no model_config.yaml", error.Message);
        Assert.DoesNotContain(_hub.Requests, r => r.File is not null);
        Assert.False(Directory.Exists(Path.Combine(RepositoryFolder(MiniOmni), "blobs")));
    }

    [Fact]
    public async Task OfflineUsesTheRefAloneWithoutAnyRequest()
    {
        var online = await ModelStore.EnsureModelAsync(options: Options());
        _hub.Push(MiniOmni, "README.md", "# Mini-Omni, later\n"u8.ToArray());
        _hub.Requests.Clear();

        var offline = await ModelStore.EnsureModelAsync(options: Options(environment: new() { ["TRANSFORMERS_OFFLINE"] = "1" }));

        Assert.Equal(online, offline);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task OfflineWithoutARefNamesTheMissingRefWithoutAnyRequest()
    {
        var options = Options(environment: new() { ["HF_HUB_OFFLINE"] = "1" });

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: options));

        Assert.Contains("offline", error.Message);
        Assert.Contains("no ref for gpt-omni/mini-omni at 'main'", error.Message);
        Assert.Equal(Path.Combine(RepositoryFolder(MiniOmni), "refs", "main"), error.FilePath);
        Assert.Contains("miniomni convert --checkpoint", error.Message);
        Assert.Empty(_hub.Requests);
        Assert.Null(ModelStore.FindCachedModel(options: options));
    }

    [Fact]
    public async Task OfflineWithARefWhoseSnapshotLacksAFileNamesTheFile()
    {
        await ModelStore.EnsureModelAsync(options: Options());
        var config = _hub.File(MiniOmni, "model_config.yaml");
        File.Delete(SnapshotPath(config));
        _hub.Requests.Clear();

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_HUB_OFFLINE"] = "1" })));

        Assert.Contains("offline", error.Message);
        Assert.Contains($"without model_config.yaml", error.Message);
        Assert.Contains(_hub.Commit(MiniOmni)[..12], error.Message);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task AnotherTypeIsConvertedFromTheCachedSnapshotsEvenOffline()
    {
        await ModelStore.EnsureModelAsync(options: Options());
        _hub.Requests.Clear();

        var options = Options(environment: new() { ["HF_HUB_OFFLINE"] = "1" });
        options.FileType = ModelFileType.F16;
        var model = await ModelStore.EnsureModelAsync(options: options);

        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", _hub.Commit(MiniOmni), "f16"), model.EnsureComplete().Path);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task AnUnreachableHubFallsBackToTheCachedRefWithAWarning()
    {
        var online = await ModelStore.EnsureModelAsync(options: Options());
        var options = Options();
        options.Endpoint = ClosedPort();

        var model = await ModelStore.EnsureModelAsync(options: options);

        Assert.Equal(online, model);
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Warning && e.Text.Contains("Could not revalidate gpt-omni/mini-omni", StringComparison.Ordinal));
        Assert.Empty(_sleeps);
    }

    [Fact]
    public async Task AHubThatDoesNotAnswerTheRevisionRequestFallsBackAfterTheMetadataTimeout()
    {
        var online = await ModelStore.EnsureModelAsync(options: Options());
        _hub.Fail(p => p.Contains("/revision/", StringComparison.Ordinal), 3, FakeHub.NoAnswer);

        var model = await ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_HUB_ETAG_TIMEOUT"] = "0.2" }));

        // The first repository's request times out; the other two, on the same hub, are not asked again.
        Assert.Equal(online, model);
        Assert.Equal(3, _log.Entries.Count(e => e.Level == LogLevel.Warning && e.Text.Contains("no answer within 0.2 s", StringComparison.Ordinal)));
        Assert.Single(_hub.RevisionRequests.Skip(3));
        Assert.Empty(_sleeps);
    }

    [Fact]
    public async Task AnUnreachableHubWithAnEmptyCacheSaysHowToUseLocalFiles()
    {
        var options = Options();
        options.Endpoint = ClosedPort();

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: options));

        Assert.Contains($"127.0.0.1:{options.Endpoint.Port}", error.Message);
        Assert.Contains("could not resolve revision 'main' of gpt-omni/mini-omni", error.Message);
        Assert.Contains("miniomni convert --checkpoint DIR --whisper FILE-OR-DIR --snac DIR --out MODEL-DIR", error.Message);
        Assert.Contains("--model MODEL-DIR", error.Message);
    }

    [Fact]
    public async Task DownloadsOfTheEarlierLayoutAreMovedIntoTheBlobsWhenTheyMatch()
    {
        var weights = _hub.File(MiniOmni, "lit_model.pth");
        var tokenizer = _hub.File(MiniOmni, "tokenizer.json");
        string legacy = Path.Combine(_cache.Path, "hub", "gpt-omni--mini-omni", "main");
        Directory.CreateDirectory(legacy);
        File.WriteAllBytes(Path.Combine(legacy, "lit_model.pth"), weights.Content);
        File.WriteAllBytes(Path.Combine(legacy, "tokenizer.json"), new byte[tokenizer.Content.Length]);
        string legacyModel = Path.Combine(_cache.Path, "models", "mini-omni", "main", "f32");
        Directory.CreateDirectory(legacyModel);

        await ModelStore.EnsureModelAsync(options: Options());

        Assert.Empty(_hub.ContentRequests(weights));
        Assert.Single(_hub.ContentRequests(tokenizer));
        Assert.Equal(weights.Content, File.ReadAllBytes(SnapshotPath(weights)));
        Assert.False(File.Exists(Path.Combine(legacy, "lit_model.pth")));
        Assert.True(File.Exists(Path.Combine(legacy, "tokenizer.json")));
        Assert.True(Directory.Exists(legacyModel));
        Assert.Contains(_log.Entries, e => e.Text.Contains("earlier layout", StringComparison.Ordinal) && e.Text.Contains(Path.GetDirectoryName(legacyModel)!, StringComparison.Ordinal));
    }

    [Fact]
    public async Task BlobsOfHuggingFaceHubsOwnCacheAreUsedWhenTheirHashMatches()
    {
        using var huggingFace = Fixture.CreateTemporaryDirectory();
        var weights = _hub.File(MiniOmni, "lit_model.pth");
        var tokenizer = _hub.File(MiniOmni, "tokenizer.json");
        string theirBlobs = Path.Combine(huggingFace.Path, "models--gpt-omni--mini-omni", "blobs");
        Directory.CreateDirectory(theirBlobs);
        File.WriteAllBytes(Path.Combine(theirBlobs, weights.Sha256), weights.Content);
        File.WriteAllBytes(Path.Combine(theirBlobs, tokenizer.Sha256), new byte[tokenizer.Content.Length]);
        var environment = new Dictionary<string, string> { ["HF_HUB_CACHE"] = huggingFace.Path };

        await ModelStore.EnsureModelAsync(options: Options(environment));

        Assert.Empty(_hub.ContentRequests(weights));
        Assert.Single(_hub.ContentRequests(tokenizer));
        Assert.Equal(weights.Content, File.ReadAllBytes(SnapshotPath(weights)));
        Assert.Contains(_log.Entries, e => e.Text.Contains("from huggingface_hub's cache", StringComparison.Ordinal));

        // Should huggingface_hub's copy go, the next commit that needs it downloads it again.
        File.Delete(Path.Combine(theirBlobs, weights.Sha256));
        string after = _hub.Push(MiniOmni, "README.md", "# Mini-Omni, later\n"u8.ToArray());
        await ModelStore.EnsureModelAsync(options: Options(environment));

        Assert.Single(_hub.ContentRequests(weights));
        Assert.Equal(weights.Content, File.ReadAllBytes(SnapshotPath(weights, after)));
    }

    [Fact]
    public async Task WithHfHubDisableSymlinksSnapshotsHoldCopies()
    {
        var model = await ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_HUB_DISABLE_SYMLINKS"] = "1" }));

        model.EnsureComplete();
        foreach (var file in _hub.WantedFiles)
        {
            Assert.Null(new FileInfo(SnapshotPath(file)).LinkTarget);
            Assert.Equal(file.Content, File.ReadAllBytes(SnapshotPath(file)));
        }
    }

    [Fact]
    public async Task ConcurrentPullsOfOneModelDownloadEachFileOnce()
    {
        var pulls = Enumerable.Range(0, 3).Select(_ => Task.Run(() => ModelStore.EnsureModelAsync(options: Options()))).ToList();

        var models = await Task.WhenAll(pulls);

        Assert.All(models, m => Assert.Equal(models[0], m.EnsureComplete()));
        foreach (var file in _hub.WantedFiles)
        {
            Assert.Single(_hub.ContentRequests(file));
        }
    }

    [Fact]
    public async Task AnUnknownModelNameListsTheKnownOnes()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => ModelStore.EnsureModelAsync("mini-omni-2", Options()));

        Assert.Contains("mini-omni-2", error.Message);
        Assert.Contains(ModelStore.DefaultModelName, error.Message);
    }

    private ModelStoreOptions Options(Dictionary<string, string>? environment = null) => new()
    {
        CacheDirectory = _cache.Path,
        Endpoint = _hub.Endpoint,
        FileType = ModelFileType.F32,
        // HF_HOME defaults to a folder that does not exist, so the machine's own token file is never read.
        EnvironmentVariables = name => environment?.GetValueOrDefault(name) ?? (name == "HF_HOME" ? Path.Combine(_cache.Path, "no-hf-home") : null),
        Logger = _log,
        Sleep = (pause, _) =>
        {
            _sleeps.Enqueue(pause);
            return Task.CompletedTask;
        },
    };

    private static Uri ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}/");
    }

    private string RepositoryFolder(string repository) =>
        Path.Combine(_cache.Path, "hub", "models--" + repository.Replace("/", "--", StringComparison.Ordinal));

    private string SnapshotPath(FakeHub.HostedFile file, string? commit = null) =>
        Path.Combine(RepositoryFolder(file.Repository), "snapshots", commit ?? _hub.Commit(file.Repository), file.Path);

    private static void AssertSameTensors(string expectedPath, string actualPath)
    {
        using var expected = GgufFile.Open(expectedPath);
        using var actual = GgufFile.Open(actualPath);
        Assert.Equal(expected.Tensors.Keys.Order(), actual.Tensors.Keys.Order());
        foreach (var (name, tensor) in expected.Tensors)
        {
            Assert.True(expected.GetTensorBytes(tensor).SequenceEqual(actual.GetTensorBytes(actual.Tensors[name])), $"{name} differs");
        }
    }
}
