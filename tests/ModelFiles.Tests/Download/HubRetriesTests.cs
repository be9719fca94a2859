using System.Net;
using System.Net.Http.Headers;
using MiniOmni.SK.ModelFiles.Download;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

/// <summary>How long the store waits before another try, and when it stops trying.</summary>
public sealed class HubRetriesTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void RetryAfterInSecondsIsThePause()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        response.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(42));

        Assert.Equal(TimeSpan.FromSeconds(42), HubRetries.RequestedDelay(response, new FixedClock(Now)));
    }

    [Fact]
    public void RetryAfterAsAnHttpDateIsMeasuredAgainstTheClock()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        response.Headers.TryAddWithoutValidation("Retry-After", Now.AddSeconds(90).ToString("r"));

        Assert.Equal(TimeSpan.FromSeconds(90), HubRetries.RequestedDelay(response, new FixedClock(Now)));
        Assert.Equal(TimeSpan.Zero, HubRetries.RequestedDelay(response, new FixedClock(Now.AddHours(1))));
    }

    [Fact]
    public void AnExhaustedRateLimitOnA429GivesItsReset()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        response.Headers.TryAddWithoutValidation("RateLimit", "\"api\";r=0;t=55");
        response.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(5));

        Assert.Equal(TimeSpan.FromSeconds(55), HubRetries.RequestedDelay(response, new FixedClock(Now)));
    }

    [Fact]
    public void NoHeaderAsksForNothing()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);

        Assert.Null(HubRetries.RequestedDelay(response, new FixedClock(Now)));
    }

    [Theory]
    [InlineData(HttpStatusCode.TooManyRequests, true)]
    [InlineData(HttpStatusCode.ServiceUnavailable, true)]
    [InlineData(HttpStatusCode.BadGateway, true)]
    [InlineData(HttpStatusCode.RequestTimeout, true)]
    [InlineData(HttpStatusCode.NotFound, false)]
    [InlineData(HttpStatusCode.Unauthorized, false)]
    [InlineData(HttpStatusCode.NotImplemented, false)]
    public void OnlyTransientStatusesAreRetried(HttpStatusCode status, bool retried) => Assert.Equal(retried, HubRetries.IsRetryable(status));

    [Fact]
    public async Task BackoffDoublesUpToItsCapWithJitterAndStopsAfterTheLastTry()
    {
        var retries = new HubRetries(Settings(TimeSpan.FromMinutes(5)));
        var pauses = new List<TimeSpan>();

        while (retries.TryPlanNext(null, out var pause, out _))
        {
            pauses.Add(pause);
            await retries.WaitAsync(pause, CancellationToken.None);
        }

        Assert.Equal(HubRetries.MaxTries - 1, pauses.Count);
        double[] steps = [1, 2, 4, 8, 8];
        for (int i = 0; i < pauses.Count; i++)
        {
            Assert.InRange(pauses[i].TotalSeconds, steps[i] / 2, steps[i]);
        }

        Assert.False(retries.TryPlanNext(TimeSpan.FromSeconds(1), out _, out string whyNot));
        Assert.Contains($"{HubRetries.MaxTries} tries", whyNot);
    }

    [Fact]
    public void AServersPauseIsNeverShortenedAndItsJitterIsSmall()
    {
        for (int i = 0; i < 50; i++)
        {
            var retries = new HubRetries(Settings(TimeSpan.FromMinutes(5)));
            Assert.True(retries.TryPlanNext(TimeSpan.FromSeconds(20), out var pause, out _));
            Assert.InRange(pause.TotalSeconds, 20, 21);
        }
    }

    [Fact]
    public async Task TheTotalWaitIsBounded()
    {
        var retries = new HubRetries(Settings(TimeSpan.FromSeconds(30)));

        Assert.True(retries.TryPlanNext(TimeSpan.FromSeconds(25), out var first, out _));
        await retries.WaitAsync(first, CancellationToken.None);

        Assert.False(retries.TryPlanNext(TimeSpan.FromSeconds(10), out _, out string whyNot));
        Assert.Contains("asks to wait 10 s", whyNot);
    }

    [Fact]
    public async Task ResetTriesGivesTheTriesBackButNotWithoutEnd()
    {
        var retries = new HubRetries(Settings(TimeSpan.FromHours(10)) with { BaseDelay = TimeSpan.Zero });
        int tries = 0;
        while (retries.TryPlanNext(null, out var pause, out _))
        {
            await retries.WaitAsync(pause, CancellationToken.None);
            retries.ResetTries();
            tries++;
        }

        Assert.Equal(HubRetries.MaxTotalTries - 1, tries);
    }

    private static RetrySettings Settings(TimeSpan total) =>
        new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8), total, (_, _) => Task.CompletedTask, new FixedClock(Now));

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
