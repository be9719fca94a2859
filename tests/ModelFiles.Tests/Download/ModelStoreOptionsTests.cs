using MiniOmni.SK.ModelFiles.Download;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

public sealed class ModelStoreOptionsTests
{
    [Fact]
    public void UnsetOptionsComeFromTheHuggingFaceVariables()
    {
        var resolved = WithEnvironment(new()
        {
            ["MINIOMNI_CACHE"] = "/data/miniomni",
            ["HF_ENDPOINT"] = "https://hf-mirror.example",
            ["HF_TOKEN"] = "hf_env",
            ["HF_HUB_OFFLINE"] = "true",
        }).Resolve();

        Assert.Equal(Path.GetFullPath("/data/miniomni"), resolved.CacheDirectory);
        Assert.Equal(new Uri("https://hf-mirror.example"), resolved.Endpoint);
        Assert.Equal("hf_env", resolved.Token?.Value);
        Assert.True(resolved.Offline);
    }

    [Fact]
    public void SetOptionsWinOverTheEnvironment()
    {
        var options = WithEnvironment(new() { ["MINIOMNI_CACHE"] = "/data/miniomni", ["HF_TOKEN"] = "hf_env", ["HF_HUB_OFFLINE"] = "1" });
        options.CacheDirectory = "/elsewhere";
        options.Token = "hf_option";
        options.Offline = false;

        var resolved = options.Resolve();

        Assert.Equal(Path.GetFullPath("/elsewhere"), resolved.CacheDirectory);
        Assert.Equal("hf_option", resolved.Token?.Value);
        Assert.False(resolved.Offline);
    }

    [Fact]
    public void NothingSetMeansTheHubOnlineAndThePlatformCache()
    {
        var resolved = WithEnvironment(new() { ["XDG_CACHE_HOME"] = "/xdg", ["HOME"] = "/home/someone" }).Resolve();

        Assert.Equal(new Uri("https://huggingface.co"), resolved.Endpoint);
        Assert.Null(resolved.Token);
        Assert.False(resolved.Offline);
        Assert.Equal(ModelFiles.Conversion.ModelFileType.Q8_0, resolved.FileType);
        Assert.Equal(
            OperatingSystem.IsWindows()
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "miniomni")
                : Path.GetFullPath("/xdg/miniomni"),
            resolved.CacheDirectory);
    }

    [Theory]
    [InlineData(null, "/home/someone/.cache/miniomni")]
    [InlineData("relative/cache", "/home/someone/.cache/miniomni")]
    [InlineData("/xdg", "/xdg/miniomni")]
    public void WithoutMiniOmniCacheUnixUsesXdgOrHome(string? xdg, string expected)
    {
        var environment = new Dictionary<string, string> { ["HOME"] = "/home/someone" };
        if (xdg is not null)
        {
            environment["XDG_CACHE_HOME"] = xdg;
        }

        string resolved = WithEnvironment(environment).Resolve().CacheDirectory;

        Assert.Equal(OperatingSystem.IsWindows() ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "miniomni") : expected, resolved);
    }

    [Theory]
    [InlineData("0", false)]
    [InlineData("false", false)]
    [InlineData("1", true)]
    [InlineData("YES", true)]
    [InlineData("On", true)]
    public void HfHubOfflineTakesTheValuesHuggingFaceHubTakes(string value, bool offline) =>
        Assert.Equal(offline, WithEnvironment(new() { ["HF_HUB_OFFLINE"] = value }).Resolve().Offline);

    [Fact]
    public void AnEndpointThatIsNoAddressIsNamed()
    {
        var error = Assert.Throws<ArgumentException>(() => WithEnvironment(new() { ["HF_ENDPOINT"] = "huggingface.co" }).Resolve());

        Assert.Contains("HF_ENDPOINT 'huggingface.co'", error.Message);
    }

    [Theory]
    [InlineData("main", "main")]
    [InlineData("refs/pr/1", "refs_pr_1")]
    [InlineData("..", "__")]
    public void RevisionsBecomeOneSafeFolderName(string revision, string folder) =>
        Assert.Equal(folder, ModelStore.SafeFolderName(revision));

    [Fact]
    public void HubAddressesKeepAMirrorsPathAndEscapeTheRevision()
    {
        var resolved = WithEnvironment(new() { ["HF_ENDPOINT"] = "https://mirror.example/hf" }).Resolve();
        var client = new HubClient(resolved, httpClient: null);

        Assert.Equal("https://mirror.example/hf/api/models/gpt-omni/mini-omni/revision/refs%2Fpr%2F1", client.RevisionUri("gpt-omni/mini-omni", "refs/pr/1").AbsoluteUri);
        Assert.Equal("https://mirror.example/hf/api/models/gpt-omni/mini-omni/tree/" + Commit, client.TreeUri("gpt-omni/mini-omni", Commit).AbsoluteUri);
        Assert.Equal($"https://mirror.example/hf/gpt-omni/mini-omni/resolve/{Commit}/lit_model.pth", client.ResolveUri("gpt-omni/mini-omni", Commit, "lit_model.pth").AbsoluteUri);
    }

    [Theory]
    [InlineData("main", "refs/main")]
    [InlineData("refs/pr/1", "refs/refs/pr/1")]
    [InlineData("../../escape", "refs/__/__/escape")]
    public void RefFilesNestAsHuggingFaceHubNestsThemAndStayInsideTheCache(string revision, string relative)
    {
        var cache = new HubRepositoryCache("/cache/hub", "gpt-omni/mini-omni", Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        Assert.Equal(Path.GetFullPath("/cache/hub/models--gpt-omni--mini-omni"), Path.GetFullPath(cache.Root));
        Assert.Equal(Path.GetFullPath(Path.Combine(cache.Root, relative)), Path.GetFullPath(cache.RefPath(revision)));
    }

    [Theory]
    [InlineData(new[] { "HF_TOKEN", "hf_a", "HUGGING_FACE_HUB_TOKEN", "hf_b" }, "hf_a", "HF_TOKEN")]
    [InlineData(new[] { "HUGGING_FACE_HUB_TOKEN", "hf_b\n" }, "hf_b", "HUGGING_FACE_HUB_TOKEN")]
    [InlineData(new[] { "HF_TOKEN", "  hf_a \r\n" }, "hf_a", "HF_TOKEN")]
    [InlineData(new[] { "HF_TOKEN", "hf_a", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "1" }, null, null)]
    public void TheTokenComesFromTheVariablesInHuggingFaceHubsOrder(string[] variables, string? token, string? source)
    {
        var environment = new Dictionary<string, string>();
        for (int i = 0; i < variables.Length; i += 2)
        {
            environment[variables[i]] = variables[i + 1];
        }

        environment["HF_HOME"] = "/nowhere/huggingface";
        var resolved = WithEnvironment(environment).Resolve();

        Assert.Equal(token, resolved.Token?.Value);
        Assert.Equal(source, resolved.Token?.Source);
    }

    [Fact]
    public void TheTokenFileIsReadWhenNoVariableHoldsATokenAndANewlineOnlyVariableCountsAsUnset()
    {
        using var home = Fixture.CreateTemporaryDirectory();
        File.WriteAllText(Path.Combine(home.Path, "token"), "hf_file\n");

        var resolved = WithEnvironment(new() { ["HF_HOME"] = home.Path, ["HF_TOKEN"] = "\n" }).Resolve();

        Assert.Equal("hf_file", resolved.Token?.Value);
        Assert.Contains(Path.Combine(home.Path, "token"), resolved.Token!.Source);
    }

    [Fact]
    public void AnExplicitTokenWinsAndIsCleanedToo()
    {
        var options = WithEnvironment(new() { ["HF_TOKEN"] = "hf_env" });
        options.Token = "hf_option\n";

        Assert.Equal("hf_option", options.Resolve().Token?.Value);
    }

    [Theory]
    [InlineData(new string[0], "/home/someone/.cache/huggingface/token")]
    [InlineData(new[] { "XDG_CACHE_HOME", "/xdg" }, "/xdg/huggingface/token")]
    [InlineData(new[] { "HF_HOME", "~/hf" }, "/home/someone/hf/token")]
    [InlineData(new[] { "HF_HOME", "$DATA/hf", "DATA", "/data" }, "/data/hf/token")]
    [InlineData(new[] { "HF_HOME", "/hf", "HF_TOKEN_PATH", "${DATA}/secret", "DATA", "/data" }, "/data/secret")]
    public void TheTokenFileIsWhereHuggingFaceHubKeepsIt(string[] variables, string expected)
    {
        var environment = new Dictionary<string, string> { ["HOME"] = "/home/someone" };
        for (int i = 0; i < variables.Length; i += 2)
        {
            environment[variables[i]] = variables[i + 1];
        }

        Assert.Equal(Path.GetFullPath(expected), HuggingFacePaths.TokenFile(name => environment.GetValueOrDefault(name)));
    }

    [Fact]
    public void TimeoutsComeFromHuggingFaceHubsVariables()
    {
        var resolved = WithEnvironment(new() { ["HF_HUB_ETAG_TIMEOUT"] = "2.5", ["HF_HUB_DOWNLOAD_TIMEOUT"] = "30" }).Resolve();
        var defaults = WithEnvironment([]).Resolve();

        Assert.Equal(TimeSpan.FromSeconds(2.5), resolved.MetadataTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), resolved.StallTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), defaults.MetadataTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), defaults.StallTimeout);
        Assert.Contains("HF_HUB_ETAG_TIMEOUT 'soon'", Assert.Throws<ArgumentException>(() => WithEnvironment(new() { ["HF_HUB_ETAG_TIMEOUT"] = "soon" }).Resolve()).Message);
    }

    [Fact]
    public void TheResolvedOptionsNeverPrintTheToken()
    {
        var resolved = WithEnvironment(new() { ["HF_TOKEN"] = "hf_SECRET" }).Resolve();

        Assert.DoesNotContain("hf_SECRET", resolved.ToString());
        Assert.Contains("HF_TOKEN", resolved.ToString());
    }

    [Theory]
    [InlineData(null, "1", true)]
    [InlineData(null, "true", true)]
    [InlineData("0", "1", false)]
    [InlineData("1", null, true)]
    public void TransformersOfflineCountsAsHfHubOfflineUnlessThatIsSet(string? hfHubOffline, string? transformersOffline, bool offline)
    {
        var environment = new Dictionary<string, string>();
        if (hfHubOffline is not null)
        {
            environment["HF_HUB_OFFLINE"] = hfHubOffline;
        }

        if (transformersOffline is not null)
        {
            environment["TRANSFORMERS_OFFLINE"] = transformersOffline;
        }

        Assert.Equal(offline, WithEnvironment(environment).Resolve().Offline);
    }

    private const string Commit = "0123456789abcdef0123456789abcdef01234567";

    // HF_HOME defaults to a folder that does not exist, so the machine's own token file is never read.
    private static ModelStoreOptions WithEnvironment(Dictionary<string, string> environment) =>
        new() { EnvironmentVariables = name => environment.GetValueOrDefault(name) ?? (name == "HF_HOME" ? "/nowhere/huggingface" : null) };
}
