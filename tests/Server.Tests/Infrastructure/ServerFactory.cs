using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Tests.Infrastructure;

/// <summary>The fixture model loaded once for every server test (they share one collection, so they run one at a time).</summary>
public sealed class FixtureEngine : IDisposable
{
    private readonly ConvertedFixtureModel _model = new();

    public FixtureEngine()
    {
        Engine = MiniOmniEngine.Load(_model.Model.Path, new MiniOmniEngineOptions { ContextSize = 2048, Threads = 2, FullPrecisionCache = true });
        QuestionWav = File.ReadAllBytes(Fixture.Question);
        Question = AudioDecoder.DecodeFile(Fixture.Question);
    }

    public MiniOmniEngine Engine { get; }

    public string ModelPath => _model.Model.Path;

    public byte[] QuestionWav { get; }

    /// <summary>The question at 16 kHz.</summary>
    public float[] Question { get; }

    public void Dispose()
    {
        Engine.Dispose();
        _model.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<FixtureEngine>
{
    public const string Name = "server";
}

/// <summary>
/// The server over a given engine (the fixture's, or a scripted one), configured as a test needs; in process (TestServer)
/// or, after <see cref="StartKestrel"/>, on a loopback port for real clients.
/// </summary>
public sealed class ServerFactory(IMiniOmniEngine? engine, Dictionary<string, string?>? settings = null, IModelLoader? loader = null, Action<IServiceCollection>? services = null) : WebApplicationFactory<Program>
{
    /// <summary>The answer budget the tests' server allows: short answers, so each test takes seconds.</summary>
    public const int AnswerTokens = 24;

    private bool _kestrel;

    /// <summary>Runs on a real Kestrel on a free loopback port and returns its address.</summary>
    public Uri StartKestrel()
    {
        _kestrel = true;
        UseKestrel(kestrel => kestrel.Listen(System.Net.IPAddress.Loopback, 0));
        StartServer();
        string address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("[::1]", "127.0.0.1", StringComparison.Ordinal));
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        var all = new Dictionary<string, string?>
        {
            ["MiniOmni:Model"] = "fixture",
            ["MiniOmni:Limits:MaxAnswerTokens"] = AnswerTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (!_kestrel)
        {
            all["urls"] = "http://127.0.0.1:0";
        }

        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }

        foreach (var (key, value) in all)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(collection =>
        {
            collection.AddSingleton(loader ?? new GivenEngineLoader(engine ?? throw new ArgumentNullException(nameof(engine))));
            services?.Invoke(collection);
        });
    }

    /// <summary>Waits until the model is loaded (the loader runs in the background at start).</summary>
    public async Task WaitReadyAsync()
    {
        var host = Services.GetRequiredService<ModelHost>();
        for (int i = 0; i < 600 && !host.IsReady; i++)
        {
            await Task.Delay(50);
        }

        Assert.True(host.IsReady, "the model did not become ready within 30 s");
    }
}

/// <summary>Hands the server an engine loaded elsewhere; the server must not dispose it.</summary>
internal sealed class GivenEngineLoader(IMiniOmniEngine engine) : IModelLoader
{
    public Task<IMiniOmniEngine> LoadAsync(CancellationToken cancellationToken) => Task.FromResult<IMiniOmniEngine>(new NonOwningEngine(engine));

    private sealed class NonOwningEngine(IMiniOmniEngine inner) : DelegatingMiniOmniEngine(inner);
}

/// <summary>A loader that finishes only when the test says so (or fails as told).</summary>
internal sealed class GatedLoader(IMiniOmniEngine engine) : IModelLoader
{
    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task<IMiniOmniEngine> LoadAsync(CancellationToken cancellationToken)
    {
        await Release.Task.WaitAsync(cancellationToken);
        return await new GivenEngineLoader(engine).LoadAsync(cancellationToken);
    }
}

/// <summary>An engine that plays what the test scripts, recording each request.</summary>
internal sealed class ScriptedEngine(Func<MiniOmniRequest, CancellationToken, IAsyncEnumerable<MiniOmniEvent>> script) : IMiniOmniEngine
{
    public List<MiniOmniRequest> Requests { get; } = [];

    public string ModelId => "scripted";

    public int MaxPositions => 2048;

    public IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, CancellationToken cancellationToken = default)
    {
        lock (Requests)
        {
            Requests.Add(request);
        }

        return script(request, cancellationToken);
    }

    public static async IAsyncEnumerable<MiniOmniEvent> Play(IEnumerable<MiniOmniEvent> events, [EnumeratorCancellation] CancellationToken token, Task? hold = null)
    {
        if (hold is not null)
        {
            await hold.WaitAsync(token);
        }

        foreach (var item in events)
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return item;
        }
    }

    public static AnswerCompleted Completed(int prompt, int steps) => new(prompt, steps, 0, null, TimeSpan.Zero, []);
}
