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
        Assert.Equal("hf_env", resolved.Token);
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
        Assert.Equal("hf_option", resolved.Token);
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
        var options = WithEnvironment(new() { ["HF_ENDPOINT"] = "https://mirror.example/hf" });
        options.Revision = "refs/pr/1";
        var resolved = options.Resolve();
        var client = new HubClient(resolved, httpClient: null);
        var source = HubModels.Get(ModelStore.DefaultModelName, resolved.Revision).Checkpoint;

        Assert.Equal("https://mirror.example/hf/api/models/gpt-omni/mini-omni/tree/refs%2Fpr%2F1", client.TreeUri(source).AbsoluteUri);
        Assert.Equal("https://mirror.example/hf/gpt-omni/mini-omni/resolve/refs%2Fpr%2F1/lit_model.pth", client.ResolveUri(source, "lit_model.pth").AbsoluteUri);
    }

    private static ModelStoreOptions WithEnvironment(Dictionary<string, string> environment) =>
        new() { EnvironmentVariables = name => environment.GetValueOrDefault(name) };
}
