using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;

namespace MiniOmni.SK;

/// <summary>
/// An engine that loads its model on first use without blocking a thread: the first request (or <see cref="LoadAsync"/>)
/// resolves the model (a named model is downloaded and converted into the cache first, progress logged), loads it on a
/// worker thread, and every request awaits that one load. What <c>AddMiniOmni(modelPath)</c> registers, so resolving a
/// service never waits on a download. A failed load is retried by the next request; disposing cancels a load under way.
/// </summary>
public sealed class LazyMiniOmniEngine : IMiniOmniEngine, IEncodeAhead, IPromptCacheOwners, IDisposable
{
    private readonly MiniOmniOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly Lock _lock = new();
    private Task<MiniOmniEngine>? _loading;
    private bool _disposed;

    /// <summary>An engine for <paramref name="options"/>' model, loaded when first asked.</summary>
    public LazyMiniOmniEngine(MiniOmniOptions options, ILoggerFactory? loggers = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.ModelPath);
        _options = options;
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _logger = _loggers.CreateLogger<LazyMiniOmniEngine>();
        bool named = !Directory.Exists(options.ModelPath) && ModelStore.ModelNames.Contains(options.ModelPath, StringComparer.OrdinalIgnoreCase);
        ModelId = named ? options.ModelPath : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.ModelPath)));
    }

    /// <summary>The model's name: a model directory's name (as the loaded engine reports it), or the model name given (e.g. <c>mini-omni</c>).</summary>
    public string ModelId { get; }

    /// <summary>The loaded engine's limit; until it is loaded, the configured cache size, an upper bound.</summary>
    public int MaxPositions => IsLoaded ? _loading!.Result.MaxPositions : (int)_options.Engine.ContextSize;

    /// <summary>Whether the model is loaded.</summary>
    public bool IsLoaded => _loading is { IsCompletedSuccessfully: true };

    /// <summary>
    /// Loads the model if no load is under way or done (a warm-up at start), runs every stage once
    /// (<see cref="MiniOmniEngine.WarmUpAsync"/>), and waits for it. Cancelling
    /// <paramref name="cancellationToken"/> stops the wait, not the load, which other requests may share.
    /// </summary>
    public Task<MiniOmniEngine> LoadAsync(CancellationToken cancellationToken = default)
    {
        Task<MiniOmniEngine> loading;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_loading is null || _loading.IsFaulted || _loading.IsCanceled)
            {
                _loading = Task.Run(() => LoadCoreAsync(_lifetime.Token), CancellationToken.None);
            }

            loading = _loading;
        }

        return loading.WaitAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var engine = await LoadAsync(cancellationToken).ConfigureAwait(false);
        await foreach (var item in engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            yield return item;
        }
    }

    /// <inheritdoc />
    void IEncodeAhead.EncodeAhead(float[] audio, Speech.EncoderMode mode)
    {
        // Before the load there is nothing to get ahead with; the request encodes as usual.
        if (IsLoaded)
        {
            ((IEncodeAhead)_loading!.Result).EncodeAhead(audio, mode);
        }
    }

    /// <inheritdoc />
    Task<int> IPromptCacheOwners.ForgetAsync(object owner) =>
        IsLoaded ? ((IPromptCacheOwners)_loading!.Result).ForgetAsync(owner) : Task.FromResult(0);

    /// <inheritdoc />
    Task IPromptCacheOwners.PrefillPreambleAsync(string preamble, object owner, CancellationToken cancellationToken) =>
        // Before the load there is no cache to fill; the request decodes its preamble as usual.
        IsLoaded ? ((IPromptCacheOwners)_loading!.Result).PrefillPreambleAsync(preamble, owner, cancellationToken) : Task.CompletedTask;

    /// <summary>Cancels a load under way and disposes the loaded engine.</summary>
    public void Dispose()
    {
        Task<MiniOmniEngine>? loading;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            loading = _loading;
        }

        _lifetime.Cancel();
        if (loading is { IsCompletedSuccessfully: true })
        {
            loading.Result.Dispose();
        }
        else
        {
            // A load still under way disposes what it loads once it ends (the engine's Dispose is idempotent).
            loading?.ContinueWith(done => done.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        }
    }

    private async Task<MiniOmniEngine> LoadCoreAsync(CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _logger.LogInformation("Loading Mini-Omni model {Model}.", _options.ModelPath);
        _options.Download.Logger ??= _loggers.CreateLogger("MiniOmni.SK.ModelStore");
        var directory = await ModelStore.ResolveAsync(_options.ModelPath, _options.Download, new DownloadLog(_logger), new ConversionLog(_logger), cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        var engine = MiniOmniEngine.Load(directory.Path, _options.Engine, _loggers);
        try
        {
            // Every stage once, so that the first request after the load costs what later ones do.
            await engine.WarmUpAsync(cancellationToken).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
        catch
        {
            engine.Dispose();
            throw;
        }

        _logger.LogInformation("Mini-Omni model {Model} loaded from {Directory} in {Seconds:F1} s.", _options.ModelPath, directory.Path, clock.Elapsed.TotalSeconds);
        return engine;
    }

    // A download's progress, logged at each file and every tenth of the whole.
    private sealed class DownloadLog(ILogger logger) : IProgress<DownloadProgress>
    {
        private string? _file;
        private long _tenth = -1;

        public void Report(DownloadProgress value)
        {
            long tenth = value.TotalBytes > 0 ? 10 * value.BytesDone / value.TotalBytes : 0;
            if (value.FileName != _file || tenth != _tenth)
            {
                _file = value.FileName;
                _tenth = tenth;
                logger.LogInformation("Downloading {Repository}/{File}: {Done:F0} of {Total:F0} MB in all.", value.Repository, value.FileName, value.BytesDone / 1e6, value.TotalBytes / 1e6);
            }
        }
    }

    // A conversion's progress, logged at each stage.
    private sealed class ConversionLog(ILogger logger) : IProgress<ConversionProgress>
    {
        private string? _stage;

        public void Report(ConversionProgress value)
        {
            if (value.Stage != _stage)
            {
                _stage = value.Stage;
                logger.LogInformation("Converting the model: {Stage}.", value.Stage);
            }
        }
    }
}
