using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Hosting;
using MiniOmni.SK.Server.Tests.Infrastructure;

namespace MiniOmni.SK.Server.Tests;

/// <summary>Issue 25, item 1: the server's model is warm when it says it is ready.</summary>
[Collection(ServerCollection.Name)]
public sealed class ModelLoadingTests(FixtureEngine fixture)
{
    [Fact]
    public async Task TheServersLoaderWarmsTheEngineUpBeforeHandingItOver()
    {
        var options = Microsoft.Extensions.Options.Options.Create(new MiniOmniServerOptions { Model = fixture.ModelPath, Offline = true, ContextSize = 1024, Threads = 2, EngineNiceness = 0 });

        using var engine = Assert.IsType<MiniOmniEngine>(await new StoreModelLoader(options, NullLoggerFactory.Instance).LoadAsync(CancellationToken.None));

        Assert.True(engine.IsWarmedUp);
    }
}
