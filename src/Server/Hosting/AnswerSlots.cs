using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>
/// The server's answer slots: as many as the engine decodes together, and a bounded queue in arrival order behind them.
/// The framework's rate limiter holds an HTTP answer's slot for the whole request (streamed ones included); a request
/// that finds the queue full gets 429 with Retry-After. Its counts feed readiness and the metrics.
/// </summary>
public sealed class AnswerSlots : IDisposable
{
    /// <summary>The rate limiter policy that takes a slot.</summary>
    public const string Policy = "answers";

    private readonly ConcurrencyLimiter _limiter;

    public AnswerSlots(IOptions<MiniOmniServerOptions> options)
    {
        PermitLimit = options.Value.MaxConcurrentAnswers;
        QueueLimit = options.Value.Limits.MaxQueuedAnswers;
        _limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = PermitLimit,
            QueueLimit = QueueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
        Limiter = new SharedLimiter(_limiter);
    }

    /// <summary>Answers at once.</summary>
    public int PermitLimit { get; }

    /// <summary>Answers that may wait.</summary>
    public int QueueLimit { get; }

    /// <summary>The limiter the rate limiting middleware uses: the one shared instance, never disposed or replaced by it.</summary>
    public RateLimiter Limiter { get; }

    /// <summary>HTTP answers holding a slot.</summary>
    public int Active => PermitLimit - (int)(_limiter.GetStatistics()?.CurrentAvailablePermits ?? PermitLimit);

    /// <summary>HTTP answers waiting for a slot.</summary>
    public int Queued => (int)(_limiter.GetStatistics()?.CurrentQueuedCount ?? 0);

    /// <summary>Whether a new HTTP answer would be refused.</summary>
    public bool QueueFull => Active >= PermitLimit && Queued >= QueueLimit;

    public void Dispose() => _limiter.Dispose();

    // The middleware's partitioned limiter disposes a partition's limiter once it has been idle a while and makes a new
    // one from the factory; this one is shared, so it reports itself never idle and ignores disposal.
    private sealed class SharedLimiter(RateLimiter inner) : RateLimiter
    {
        public override TimeSpan? IdleDuration => null;

        public override RateLimiterStatistics? GetStatistics() => inner.GetStatistics();

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => inner.AttemptAcquire(permitCount);

        protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) => inner.AcquireAsync(permitCount, cancellationToken);

        protected override void Dispose(bool disposing)
        {
        }

        protected override ValueTask DisposeAsyncCore() => ValueTask.CompletedTask;
    }
}
