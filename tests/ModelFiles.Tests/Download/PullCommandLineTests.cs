using System.Diagnostics;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

/// <summary>
/// <c>miniomni pull</c> as a script uses it (<c>dir=$(miniomni pull)</c>): the command line run as its own process against
/// the fake hub, its standard output holding the model directory alone, its progress and hints on standard error.
/// </summary>
public sealed class PullCommandLineTests : IAsyncLifetime
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
    public async Task PullPrintsTheModelDirectoryAloneOnStandardOutputAndItsProgressOnStandardError()
    {
        var (exit, stdout, stderr) = await RunCliAsync("pull", "--cache", _cache.Path, "--type", "f32", "--endpoint", _hub.Endpoint.ToString());

        Assert.True(exit == 0, $"exit {exit}; stderr: {stderr}");
        var model = ModelStore.FindCachedModel(options: new ModelStoreOptions { CacheDirectory = _cache.Path, Endpoint = _hub.Endpoint, FileType = ModelFileType.F32, Offline = true });
        Assert.NotNull(model);
        Assert.Equal(model.Path + Environment.NewLine, stdout);
        Assert.Contains("Pulling mini-omni", stderr, StringComparison.Ordinal);
        Assert.Contains($"miniomni run --model \"{model.Path}\"", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFailedPullWritesNothingOnStandardOutput()
    {
        var (exit, stdout, stderr) = await RunCliAsync("pull", "--cache", _cache.Path, "--type", "f32", "--offline");

        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Contains("error:", stderr, StringComparison.Ordinal);
    }

    // The command line built beside this test project (src/Cli/bin/<Configuration>/<framework>/miniomni.dll), run by the
    // dotnet host that runs the tests, with no token, cache or hub setting of the machine's.
    private static async Task<(int Exit, string Stdout, string Stderr)> RunCliAsync(params string[] args)
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = output.Name, configuration = output.Parent!.Name;
        string root = output.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        string cli = Path.Combine(root, "src", "Cli", "bin", configuration, framework, "miniomni.dll");
        Assert.True(File.Exists(cli), $"{cli} is missing: the test project builds src/Cli first");

        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(cli);
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (string name in new[] { "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MINIOMNI_CACHE", "MINIOMNI_LOG" })
        {
            start.Environment.Remove(name);
        }

        start.Environment["HF_HOME"] = Path.Combine(Path.GetTempPath(), $"no-hf-home-{Guid.NewGuid():N}");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(deadline.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
