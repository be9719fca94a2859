using System.Net;
using System.Net.Sockets;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

/// <summary>Whole pulls against a real HTTP server on loopback that serves the fixture in the hub's layout.</summary>
public sealed class ModelStoreTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>, IAsyncLifetime
{
    private readonly Fixture.TemporaryDirectory _cache = Fixture.CreateTemporaryDirectory();
    private FakeHub _hub = null!;

    public async Task InitializeAsync() => _hub = await FakeHub.StartAsync();

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _cache.Dispose();
    }

    [Fact]
    public async Task APullDownloadsEveryFileAndConvertsThemIntoACompleteModel()
    {
        var reports = new List<DownloadProgress>();

        var model = await ModelStore.EnsureModelAsync(options: Options(), downloadProgress: new SynchronousProgress<DownloadProgress>(reports.Add));

        model.EnsureComplete();
        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", "main", "f32"), model.Path);
        Assert.Equal(ModelStore.GetModelDirectory(options: Options()), model);
        AssertSameTensors(converted.Model.BackbonePath, model.BackbonePath);
        AssertSameTensors(converted.Model.VocabularyPath, model.VocabularyPath);
        AssertSameTensors(converted.Model.AudioPath, model.AudioPath);

        var wanted = _hub.Files.Where(f => f.Path != "README.md").ToList();
        foreach (var file in wanted)
        {
            Assert.Equal(file.Content, File.ReadAllBytes(DownloadedPath(file)));
            Assert.Single(_hub.ContentRequests(file));
            Assert.Contains(reports, r => r.Repository == file.Repository && r.FileName == file.Path && r.FileBytesDone == file.Content.Length && r.FileBytes == file.Content.Length);
        }

        long total = wanted.Sum(f => (long)f.Content.Length);
        Assert.All(reports, r => Assert.Equal(total, r.TotalBytes));
        Assert.Equal(total, reports[^1].BytesDone);
        Assert.Empty(Directory.EnumerateFiles(_cache.Path, "*.partial", SearchOption.AllDirectories));
        Assert.Empty(Directory.EnumerateDirectories(_cache.Path, "*.partial-*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task ASecondPullComesFromTheCacheWithoutAnyRequest()
    {
        var first = await ModelStore.EnsureModelAsync(options: Options());
        _hub.Requests.Clear();

        var second = await ModelStore.EnsureModelAsync(options: Options());

        Assert.Equal(first, second);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task AnotherTypeIsConvertedFromTheCachedDownloadsEvenOffline()
    {
        await ModelStore.EnsureModelAsync(options: Options());
        _hub.Requests.Clear();

        var options = Options(environment: new() { ["HF_HUB_OFFLINE"] = "1" });
        options.FileType = ModelFileType.F16;
        var model = await ModelStore.EnsureModelAsync(options: options);

        Assert.Equal(Path.Combine(_cache.Path, "models", "mini-omni", "main", "f16"), model.EnsureComplete().Path);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task AnInterruptedTransferResumesWithARangeRequest()
    {
        var weights = _hub.File("gpt-omni/mini-omni", "lit_model.pth");
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
        Assert.Equal(weights.Content.Length - resumedAt, transfers[1].BytesSent);
        Assert.Equal(weights.Content, File.ReadAllBytes(DownloadedPath(weights)));
    }

    [Fact]
    public async Task APartialFileOfAnEarlierRunIsResumedWhereItEnded()
    {
        var tokenizer = _hub.File("gpt-omni/mini-omni", "tokenizer.json");
        Directory.CreateDirectory(Path.GetDirectoryName(DownloadedPath(tokenizer))!);
        File.WriteAllBytes(DownloadedPath(tokenizer) + ".partial", tokenizer.Content[..1_000_000]);

        await ModelStore.EnsureModelAsync(options: Options());

        var transfer = Assert.Single(_hub.ContentRequests(tokenizer));
        Assert.Equal("bytes=1000000-", transfer.Range);
        Assert.Equal(tokenizer.Content.Length - 1_000_000, transfer.BytesSent);
        Assert.Equal(tokenizer.Content, File.ReadAllBytes(DownloadedPath(tokenizer)));
        Assert.False(File.Exists(DownloadedPath(tokenizer) + ".partial"));
    }

    [Fact]
    public async Task AStalePartialFileOfAnEarlierRunIsFetchedAfreshWhenTheResultDoesNotCheck()
    {
        var snac = _hub.File("hubertsiuzdak/snac_24khz", "pytorch_model.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(DownloadedPath(snac))!);
        File.WriteAllBytes(DownloadedPath(snac) + ".partial", new byte[1000]);

        await ModelStore.EnsureModelAsync(options: Options());

        var transfers = _hub.ContentRequests(snac);
        Assert.Equal(["bytes=1000-", null], transfers.Select(t => t.Range));
        Assert.Equal(snac.Content, File.ReadAllBytes(DownloadedPath(snac)));
    }

    [Fact]
    public async Task AServerThatIgnoresRangeRestartsTheFileInsteadOfAppending()
    {
        var snac = _hub.File("hubertsiuzdak/snac_24khz", "pytorch_model.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(DownloadedPath(snac))!);
        File.WriteAllBytes(DownloadedPath(snac) + ".partial", new byte[1000]);
        _hub.IgnoreRange = true;

        await ModelStore.EnsureModelAsync(options: Options());

        var transfer = Assert.Single(_hub.ContentRequests(snac));
        Assert.Equal("bytes=1000-", transfer.Range);
        Assert.Equal(200, transfer.Status);
        Assert.Equal(snac.Content, File.ReadAllBytes(DownloadedPath(snac)));
    }

    [Theory]
    [InlineData("hubertsiuzdak/snac_24khz", "pytorch_model.bin", "SHA-256")]
    [InlineData("gpt-omni/mini-omni", "model_config.yaml", "git blob id")]
    public async Task ACorruptDownloadIsNamedAndNotKept(string repository, string path, string check)
    {
        var file = _hub.File(repository, path);
        _hub.Corrupt(file);

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains($"{repository}/{path}", error.Message);
        Assert.Contains(check, error.Message);
        Assert.Contains(check == "SHA-256" ? file.Sha256 : file.GitBlobId, error.Message);
        Assert.False(File.Exists(DownloadedPath(file)));
        Assert.False(File.Exists(DownloadedPath(file) + ".partial"));
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "models")));
    }

    [Fact]
    public async Task HfTokenIsSentAsABearerTokenToTheHubButNotToTheCdn()
    {
        _hub.RequiredToken = "hf_fixture_token";

        var model = await ModelStore.EnsureModelAsync(options: Options(environment: new() { ["HF_TOKEN"] = "hf_fixture_token" }));

        model.EnsureComplete();
        var hubRequests = _hub.Requests.Where(r => !r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToList();
        var cdnRequests = _hub.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(hubRequests);
        Assert.NotEmpty(cdnRequests);
        Assert.All(hubRequests, r => Assert.Equal("Bearer hf_fixture_token", r.Authorization));
        Assert.All(cdnRequests, r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task ARefusedTokenlessRequestSaysToSetHfToken()
    {
        _hub.RequiredToken = "hf_fixture_token";

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("401", error.Message);
        Assert.Contains("gpt-omni/mini-omni", error.Message);
        Assert.Contains("HF_TOKEN", error.Message);
        Assert.Contains("miniomni convert --checkpoint", error.Message);
        Assert.Equal(HttpStatusCode.Unauthorized, Assert.IsType<HttpRequestException>(error.InnerException).StatusCode);
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "hub")));
    }

    [Fact]
    public async Task AWrongTokenIsCalledInvalid()
    {
        _hub.RequiredToken = "hf_fixture_token";
        var options = Options();
        options.Token = "hf_wrong";

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: options));

        Assert.Contains("401", error.Message);
        Assert.Contains("token (HF_TOKEN) is invalid", error.Message);
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
    public async Task AFileTheRepositoryLacksIsNamedBeforeAnyDownload()
    {
        _hub.Remove(_hub.File("gpt-omni/mini-omni", "tokenizer_config.json"));

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: Options()));

        Assert.Contains("gpt-omni/mini-omni at revision 'main' has no tokenizer_config.json", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_cache.Path, "hub")));
    }

    [Fact]
    public async Task OfflineWithAnEmptyCacheFailsWithoutAnyRequest()
    {
        var options = Options(environment: new() { ["HF_HUB_OFFLINE"] = "1" });

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: options));

        Assert.Contains("offline", error.Message);
        Assert.Contains("gpt-omni/mini-omni/lit_model.pth", error.Message);
        Assert.Contains("miniomni convert --checkpoint", error.Message);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task AnUnreachableEndpointSaysHowToUseLocalFiles()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int closedPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var options = Options();
        options.Endpoint = new Uri($"http://127.0.0.1:{closedPort}/");

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.EnsureModelAsync(options: options));

        Assert.Contains($"127.0.0.1:{closedPort}", error.Message);
        Assert.Contains("could not list gpt-omni/mini-omni", error.Message);
        Assert.Contains("miniomni convert --checkpoint DIR --whisper FILE-OR-DIR --snac DIR --out MODEL-DIR", error.Message);
        Assert.Contains("--model MODEL-DIR", error.Message);
    }

    [Fact]
    public async Task ConcurrentPullsOfOneModelDownloadEachFileOnce()
    {
        var pulls = Enumerable.Range(0, 3).Select(_ => Task.Run(() => ModelStore.EnsureModelAsync(options: Options()))).ToList();

        var models = await Task.WhenAll(pulls);

        Assert.All(models, m => Assert.Equal(models[0], m.EnsureComplete()));
        foreach (var file in _hub.Files.Where(f => f.Path != "README.md"))
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
        EnvironmentVariables = name => environment?.GetValueOrDefault(name),
        RetryDelay = TimeSpan.Zero,
    };

    private string DownloadedPath(FakeHub.HostedFile file) =>
        Path.Combine(_cache.Path, "hub", file.Repository.Replace("/", "--", StringComparison.Ordinal), FakeHub.Revision, file.Path);

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
