using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// The retries of one request, as huggingface_hub's backoff makes them: a bounded number of tries, exponential
/// backoff with jitter between them, and the server's own <c>Retry-After</c> (seconds or an HTTP date) or, on 429, its
/// <c>RateLimit</c> reset honoured; the waits of one request add up to a bounded total.
/// </summary>
internal sealed partial class HubRetries(RetrySettings settings)
{
    /// <summary>Tries of one request, the first included; huggingface_hub makes five retries after the first.</summary>
    public const int MaxTries = 6;

    /// <summary>Tries of one request over every <see cref="ResetTries"/>: a server that sends a byte and drops the line cannot keep it going for ever.</summary>
    public const int MaxTotalTries = 10 * MaxTries;

    private TimeSpan _waited;
    private int _totalTries = 1;

    /// <summary>The tries made so far.</summary>
    public int Tries { get; private set; } = 1;

    /// <summary>The time spent waiting between tries so far.</summary>
    public TimeSpan Waited => _waited;

    /// <summary>The statuses worth another try: timeouts, rate limits, and the server errors huggingface_hub retries.</summary>
    public static bool IsRetryable(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError
            or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    /// <summary>
    /// The pause the server asks for: on 429 the reset of an exhausted <c>RateLimit</c> (<c>"api";r=0;t=55</c>, what the
    /// hub sends), else <c>Retry-After</c> as seconds or as a date. Null when the response asks for nothing.
    /// </summary>
    public static TimeSpan? RequestedDelay(HttpResponseMessage response, TimeProvider clock)
    {
        if (response.StatusCode == HttpStatusCode.TooManyRequests
            && response.Headers.TryGetValues("RateLimit", out var rateLimits)
            && RateLimitReset().Match(string.Join(",", rateLimits)) is { Success: true } reset
            && reset.Groups["remaining"].Value == "0"
            && long.TryParse(reset.Groups["reset"].Value, out long resetSeconds))
        {
            return TimeSpan.FromSeconds(Math.Min(resetSeconds, int.MaxValue));
        }

        return RetryAfter(response.Headers.RetryAfter, clock);
    }

    /// <summary>A <c>Retry-After</c> value as a pause from now (a date in the past is no pause).</summary>
    public static TimeSpan? RetryAfter(RetryConditionHeaderValue? retryAfter, TimeProvider clock) => retryAfter switch
    {
        { Delta: { } delta } => delta < TimeSpan.Zero ? TimeSpan.Zero : delta,
        { Date: { } date } => date - clock.GetUtcNow() is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero,
        _ => null,
    };

    /// <summary>
    /// Plans the next try: the pause before it, or false with the reason when the tries or the total wait are spent
    /// (a server that asks for more than the wait left is not waited for at all).
    /// </summary>
    /// <param name="requested">The pause the server asked for, if it did.</param>
    /// <param name="pause">The pause to take: the server's plus up to a tenth (at most a second) of jitter, else the backoff with jitter.</param>
    /// <param name="whyNot">Why there is no next try.</param>
    public bool TryPlanNext(TimeSpan? requested, out TimeSpan pause, out string whyNot)
    {
        pause = TimeSpan.Zero;
        whyNot = "";
        if (Tries >= MaxTries || _totalTries >= MaxTotalTries)
        {
            whyNot = $"{_totalTries} tries";
            return false;
        }

        TimeSpan left = settings.MaxTotalWait - _waited;
        if (requested is { } asked)
        {
            if (asked > left)
            {
                whyNot = $"the server asks to wait {asked.TotalSeconds:F0} s, more than the {left.TotalSeconds:F0} s left of the {settings.MaxTotalWait.TotalSeconds:F0} s a request waits in all";
                return false;
            }

            // Never earlier than asked: many clients released at one instant would meet the limit again together.
            var jitter = TimeSpan.FromTicks((long)(Math.Min(asked.Ticks / 10, TimeSpan.TicksPerSecond) * Random.Shared.NextDouble()));
            pause = asked + jitter > left ? asked : asked + jitter;
        }
        else
        {
            // Exponential backoff with "equal jitter": between half and all of the doubled delay.
            double backoff = Math.Min(settings.BaseDelay.Ticks * Math.Pow(2, Tries - 1), settings.MaxDelay.Ticks);
            pause = TimeSpan.FromTicks((long)(backoff * (0.5 + (0.5 * Random.Shared.NextDouble()))));
            if (pause > left)
            {
                whyNot = $"{_totalTries} tries and {_waited.TotalSeconds:F0} s of waiting";
                return false;
            }
        }

        return true;
    }

    /// <summary>Takes the pause planned by <see cref="TryPlanNext"/> and counts the next try.</summary>
    public async Task WaitAsync(TimeSpan pause, CancellationToken cancellationToken)
    {
        await settings.Sleep(pause, cancellationToken).ConfigureAwait(false);
        _waited += pause;
        Tries++;
        _totalTries++;
    }

    /// <summary>Starts the count of tries afresh (a download that made progress), keeping the total wait.</summary>
    public void ResetTries() => Tries = 1;

    [GeneratedRegex(@"r\s*=\s*(?<remaining>\d+)\s*;\s*t\s*=\s*(?<reset>\d+)")]
    private static partial Regex RateLimitReset();
}
