using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;
using Xunit.Abstractions;

namespace MiniOmni.SK.Packaging.Tests;

/// <summary>
/// The library packages as a consumer gets them: packed from this repository, restored into a fresh console project
/// outside it, and asked a question of the fixture model.
/// </summary>
public sealed class PackagesTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string RepositoryRoot = FindRepositoryRoot();
    private static readonly string[] Libraries = ["src/ModelFiles/MiniOmni.SK.ModelFiles.csproj", "src/Audio/MiniOmni.SK.Audio.csproj", "src/Connector/MiniOmni.SK.Connector.csproj"];
    private readonly Fixture.TemporaryDirectory _work = Fixture.CreateTemporaryDirectory();

    [Fact]
    public void PackedLibrariesRestoreIntoAFreshApplicationAndAnswer()
    {
        // A version of its own per run, so the machine's package cache never serves an older pack.
        string version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
        string feed = Directory.CreateDirectory(Path.Combine(_work.Path, "feed")).FullName;
        foreach (string library in Libraries)
        {
            Dotnet(RepositoryRoot, "pack", Path.Combine(RepositoryRoot, library), "-c", "Release", "-o", feed, $"-p:Version={version}");
        }

        foreach (string package in Directory.GetFiles(feed, "*.nupkg"))
        {
            var metadata = Nuspec(package);
            string id = Value(metadata, "id");
            Assert.DoesNotContain(metadata.Descendants().Where(e => e.Name.LocalName == "dependency"), d => d.Attribute("id")!.Value.StartsWith("LLamaSharp.Backend", StringComparison.Ordinal));
            Assert.Equal("MIT", Value(metadata, "license"));
            Assert.Equal("README.md", Value(metadata, "readme"));
            Assert.Contains("github.com", metadata.Descendants().Single(e => e.Name.LocalName == "repository").Attribute("url")!.Value);
            Assert.False(string.IsNullOrWhiteSpace(Value(metadata, "description")), id);
            using var zip = ZipFile.OpenRead(package);
            Assert.Contains(zip.Entries, e => e.FullName == "README.md");
            Assert.Contains(zip.Entries, e => e.FullName == $"lib/net10.0/{id}.xml");
        }

        using var model = new ConvertedFixtureModel();
        string app = Directory.CreateDirectory(Path.Combine(_work.Path, "app")).FullName;
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="MiniOmni.SK.Connector" Version="{version}" />
                <PackageReference Include="LLamaSharp.Backend.Cpu" Version="0.30.0" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using MiniOmni.SK.Engine;

            using var engine = MiniOmniEngine.Load(args[0], new MiniOmniEngineOptions { ContextSize = 512 });
            await foreach (var item in engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "What is your name?", MaxTokens = 4 }))
            {
                if (item is AnswerCompleted completed)
                {
                    Console.WriteLine($"answered in {completed.Steps} steps after a prompt of {completed.PromptTokens}");
                }
            }
            """);

        string run = Dotnet(app, "run", "-c", "Release", "--", model.Model.Path);

        Assert.Matches(@"answered in [1-4] steps after a prompt of [0-9]+", run);
    }

    public void Dispose() => _work.Dispose();

    private string Dotnet(string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // The test host's MSBuild settings must not leak into a separate build.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || k.StartsWith("MSBUILD", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', arguments)} did not finish in 10 minutes.");
        }

        output.WriteLine($"dotnet {string.Join(' ', arguments)} -> {process.ExitCode}");
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', arguments)} failed ({process.ExitCode}):\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    private static XElement Nuspec(string package)
    {
        using var zip = ZipFile.OpenRead(package);
        using var stream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        return XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string Value(XElement metadata, string name) => metadata.Elements().Single(e => e.Name.LocalName == name).Value;

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MiniOmni.SK.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No MiniOmni.SK.sln above {AppContext.BaseDirectory}.");
    }
}
