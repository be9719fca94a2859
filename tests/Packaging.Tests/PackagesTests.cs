using System.Diagnostics;
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Text;
using System.Text.Json;
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
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");
    private const string RepositoryUrl = "https://github.com/miniomni-sk/MiniOmni.SK";
    private readonly Fixture.TemporaryDirectory _work = Fixture.CreateTemporaryDirectory();
    private string? _version;

    [Fact]
    public void PackedLibrariesRestoreIntoAFreshApplicationAndAnswer()
    {
        // A version of its own per run, so the machine's package cache never serves an older pack.
        string version = _version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmssfff}";
        string feed = Directory.CreateDirectory(Path.Combine(_work.Path, "feed")).FullName;
        // Built under the work folder, so the repository's own bin/ and obj/ stay as the other tests use them.
        string artifacts = Path.Combine(_work.Path, "artifacts");
        foreach (string library in Libraries)
        {
            Dotnet(RepositoryRoot, "pack", Path.Combine(RepositoryRoot, library), "-c", "Release", "-o", feed, "--artifacts-path", artifacts, $"-p:Version={version}");
        }

        string[] packages = Directory.GetFiles(feed, "*.nupkg");
        Assert.Equal(["MiniOmni.SK.Audio", "MiniOmni.SK.Connector", "MiniOmni.SK.ModelFiles"], packages.Select(p => Value(Nuspec(p), "id")).Order());
        foreach (string package in packages)
        {
            AssertLibraryPackage(package, version);
        }

        using var model = new ConvertedFixtureModel();
        string app = Directory.CreateDirectory(Path.Combine(_work.Path, "app")).FullName;
        // Outside the repository, and empty Directory.* files stop MSBuild looking further up: no central package
        // management, no shared properties, as in a consumer's fresh project.
        foreach (string name in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
        {
            File.WriteAllText(Path.Combine(app, name), "<Project />");
        }

        // The packed feed beside whatever this machine restores from: the user's and the machine's NuGet.Config still
        // apply (no <clear />).
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="miniomni-packed" value="{feed}" />
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

    /// <summary>
    /// Removes this run's version from the global packages folder (each run restores a new one), then the work folder.
    /// </summary>
    public void Dispose()
    {
        string assets = Path.Combine(_work.Path, "app", "obj", "project.assets.json");
        if (_version is not null && File.Exists(assets))
        {
            using var json = JsonDocument.Parse(File.ReadAllText(assets));
            foreach (var folder in json.RootElement.GetProperty("packageFolders").EnumerateObject())
            {
                foreach (string id in new[] { "MiniOmni.SK.Audio", "MiniOmni.SK.Connector", "MiniOmni.SK.ModelFiles" })
                {
                    string restored = Path.Combine(folder.Name, id.ToLowerInvariant(), _version);
                    if (Directory.Exists(restored))
                    {
                        Directory.Delete(restored, recursive: true);
                    }
                }
            }
        }

        _work.Dispose();
    }

    /// <summary>What a consumer of a library package relies on: metadata, no backend, docs, its README, symbols with Source Link.</summary>
    private static void AssertLibraryPackage(string package, string version)
    {
        var metadata = Nuspec(package);
        string id = Value(metadata, "id");
        Assert.Equal(version, Value(metadata, "version"));
        var dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency").Select(d => d.Attribute("id")!.Value).ToList();
        Assert.NotEmpty(dependencies);
        Assert.DoesNotContain(dependencies, d => d.StartsWith("LLamaSharp.Backend", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("MiniOmni.SK contributors", Value(metadata, "authors"));
        Assert.Equal("MIT", Value(metadata, "license"));
        Assert.Equal("README.md", Value(metadata, "readme"));
        Assert.Equal(RepositoryUrl, Value(metadata, "projectUrl"));
        Assert.False(string.IsNullOrWhiteSpace(Value(metadata, "description")), id);
        Assert.False(string.IsNullOrWhiteSpace(Value(metadata, "tags")), id);
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", repository.Attribute("type")!.Value);
        Assert.Equal(RepositoryUrl, repository.Attribute("url")!.Value);
        string commit = repository.Attribute("commit")!.Value;
        Assert.Matches("^[0-9a-f]{40}$", commit);

        using (var zip = ZipFile.OpenRead(package))
        {
            Assert.Contains(zip.Entries, e => e.FullName == "LICENSE");
            Assert.Contains(zip.Entries, e => e.FullName == $"lib/net10.0/{id}.xml");
            using var readme = new StreamReader(zip.GetEntry("README.md")!.Open());
            Assert.Equal($"# {id}", readme.ReadLine());
        }

        string symbols = Path.ChangeExtension(package, ".snupkg");
        Assert.True(File.Exists(symbols), $"{id} has no symbol package.");
        Assert.Contains($"\"https://raw.githubusercontent.com/miniomni-sk/MiniOmni.SK/{commit}/*\"", SourceLink(symbols, id));
    }

    /// <summary>The Source Link JSON in the portable PDB of <paramref name="id"/> inside a symbol package.</summary>
    private static string SourceLink(string symbolPackage, string id)
    {
        using var zip = ZipFile.OpenRead(symbolPackage);
        var pdb = new MemoryStream();
        using (var entry = zip.GetEntry($"lib/net10.0/{id}.pdb")!.Open())
        {
            entry.CopyTo(pdb);
        }

        pdb.Position = 0;
        using var provider = MetadataReaderProvider.FromPortablePdbStream(pdb);
        var reader = provider.GetMetadataReader();
        foreach (var handle in reader.GetCustomDebugInformation(EntityHandle.ModuleDefinition))
        {
            var information = reader.GetCustomDebugInformation(handle);
            if (reader.GetGuid(information.Kind) == SourceLinkKind)
            {
                return Encoding.UTF8.GetString(reader.GetBlobBytes(information.Value));
            }
        }

        return "";
    }

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
