using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Download;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>Loads the engine the server answers with; replaced in tests by one that hands over an engine already loaded.</summary>
public interface IModelLoader
{
    /// <summary>Resolves and loads the model; long work (a download, a conversion, loading gigabytes).</summary>
    Task<IMiniOmniEngine> LoadAsync(CancellationToken cancellationToken);
}

/// <summary>Thrown by <see cref="ModelHost.Engine"/> until the model is loaded; the API answers it with 503 and Retry-After.</summary>
public sealed class ModelNotReadyException(string message) : Exception(message);

/// <summary>
/// The server's one engine and how far it has got: loading, ready, or failed (with the reason). Every client the API
/// uses is made over <see cref="Engine"/>, which throws until the model is ready.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private volatile IMiniOmniEngine? _engine;
    private volatile Exception? _failure;

    /// <summary>The engine, once loaded.</summary>
    /// <exception cref="ModelNotReadyException">The model is still loading, or failed to load.</exception>
    public IMiniOmniEngine Engine => _engine ?? throw new ModelNotReadyException(
        _failure is { } failure ? $"The model failed to load: {failure.Message}" : "The model is still loading; try again shortly.");

    /// <summary>Whether the engine is loaded.</summary>
    public bool IsReady => _engine is not null;

    /// <summary>Why loading failed, if it did.</summary>
    public Exception? Failure => _failure;

    internal void SetReady(IMiniOmniEngine engine) => _engine = engine;

    internal void SetFailed(Exception failure) => _failure = failure;

    /// <summary>Releases the engine, if the server loaded one that holds native resources.</summary>
    public void Dispose()
    {
        (Interlocked.Exchange(ref _engine, null) as IDisposable)?.Dispose();
    }
}

/// <summary>Resolves <see cref="MiniOmniServerOptions.Model"/> through the model store (downloading and converting a named model once) and loads it.</summary>
internal sealed class StoreModelLoader(IOptions<MiniOmniServerOptions> options, ILoggerFactory loggers) : IModelLoader
{
    public async Task<IMiniOmniEngine> LoadAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var logger = loggers.CreateLogger("MiniOmni.SK.Server.Model");
        var store = new ModelStoreOptions { CacheDirectory = settings.Cache, Offline = settings.Offline ? true : null, Logger = loggers.CreateLogger("MiniOmni.SK.ModelStore") };
        logger.LogInformation("Resolving the model {Model}.", settings.Model);
        var directory = await ModelStore.ResolveAsync(settings.Model, store, cancellationToken: cancellationToken).ConfigureAwait(false);
        logger.LogInformation("Loading {Directory}.", directory.Path);
        var engineOptions = new MiniOmniEngineOptions
        {
            ContextSize = settings.ContextSize,
            Threads = settings.Threads,
            MaxConcurrentAnswers = settings.MaxConcurrentAnswers,
            UseGpu = settings.UseGpu,
            // The engine's compute threads give way to Kestrel's, the health checks' and other sessions' (see ComputeNiceness).
            ComputeNiceness = settings.EngineNiceness,
        };
        // Loading is long and synchronous: off the host's start-up thread, on a thread of its own that ends with it.
        var engine = await Task.Factory.StartNew(() => MiniOmniEngine.Load(directory.Path, engineOptions, loggers), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Every stage once before the server says it is ready: the first request then costs what later ones do.
            await engine.WarmUpAsync(cancellationToken).ConfigureAwait(false);
            return engine;
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }
}

/// <summary>Loads the model when the host starts, without holding up the start: the API answers 503 until it is ready.</summary>
internal sealed class ModelLoadingService(ModelHost host, IModelLoader loader, ILogger<ModelLoadingService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var engine = await loader.LoadAsync(stoppingToken).ConfigureAwait(false);
            host.SetReady(engine);
            logger.LogInformation("Model {Model} ready in {Seconds:F1} s.", engine.ModelId, clock.Elapsed.TotalSeconds);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            host.SetFailed(e);
            logger.LogError(e, "The model failed to load; the API answers 503 until the server is restarted with a working model.");
        }
    }
}

/// <summary>Readiness: the model is loaded and the queue of answers is not full.</summary>
internal sealed class ModelReadyHealthCheck(ModelHost host, AnswerSlots slots) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(
            host.Failure is { } failure ? HealthCheckResult.Unhealthy($"The model failed to load: {failure.Message}")
            : !host.IsReady ? HealthCheckResult.Unhealthy("The model is loading.")
            : slots.QueueFull ? HealthCheckResult.Degraded($"All {slots.QueueLimit} queue places are taken.")
            : HealthCheckResult.Healthy($"{slots.Active} answer(s) running, {slots.Queued} waiting."));
}
