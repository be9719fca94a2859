using Microsoft.Playwright;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.Server.Tests.Infrastructure;

namespace MiniOmni.SK.Server.Tests;

/// <summary>
/// The voice page in a real browser: the machine's Chromium-family browser (<see cref="ChromiumBrowsers"/>), driven by
/// Playwright (never downloading a browser of its own), its microphone fed the fixture question from a WAV file. The page
/// must hear it, send it as PCM16 over the realtime WebSocket, and show and play the answer. A machine with no such browser
/// reports the test skipped, with the places searched and how to install one (also as a diagnostic message, which
/// <c>dotnet test</c> shows at its default verbosity); under CI (<c>CI=true</c>) that is a failure.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class VoicePageBrowserTests(FixtureEngine fixture, SkipNotice skipNotice) : IClassFixture<SkipNotice>
{
    /// <summary>Where the test leaves its screenshot of the page.</summary>
    public static string ScreenshotPath { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts", "voice-page.png");

    [SkippableFact]
    public async Task ThePageHearsTheFixtureQuestionAndShowsAndPlaysTheAnswer()
    {
        await using var factory = new ServerFactory(fixture.Engine);
        await SpeakToThePageAsync(factory, ScreenshotPath, async page =>
        {
            await Assertions.Expect(page.Locator(".turn.assistant .text").First).Not.ToBeEmptyAsync(new LocatorAssertionsToBeEmptyOptions { Timeout = 120_000 });
        });
    }

    [SkippableFact]
    public async Task WithAThinkerThePageSpeaksTheThinkersAnswer()
    {
        const string Answer = "Sunny and warm, café weather.";
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = Answer, CharactersPerToken = 3 });
        await using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Thinker:Endpoint"] = thinker.Endpoint.ToString(), ["MiniOmni:Thinker:Model"] = "stand-in-model" });
        await SpeakToThePageAsync(factory, Path.Combine(AppContext.BaseDirectory, "artifacts", "thinker-page.png"), async page =>
        {
            await Assertions.Expect(page.Locator(".turn.assistant .text").First).ToHaveTextAsync(Answer, new LocatorAssertionsToHaveTextOptions { Timeout = 120_000 });
        });
        Assert.Contains("stand-in-model", Assert.Single(thinker.Requests));
    }

    // Opens the page on the factory's server in the machine's Chromium with the fixture question as its microphone, starts
    // it, waits for speech, the user's turn, the time to first audio and what answered shows, and keeps a screenshot.
    private async Task SpeakToThePageAsync(ServerFactory factory, string screenshot, Func<IPage, Task> answered)
    {
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        using var playwright = await Playwright.CreateAsync();
        var candidates = ChromiumBrowsers.Candidates(playwright.Chromium.ExecutablePath);
        string? chromium = ChromiumBrowsers.Find(candidates);
        if (Environment.GetEnvironmentVariable(ChromiumBrowsers.OverrideVariable) is { Length: > 0 } chosen)
        {
            Assert.True(chromium == chosen, $"{ChromiumBrowsers.OverrideVariable} names {chosen}, which does not exist.");
        }

        if (chromium is null)
        {
            string missing = $"no Chromium-family browser on this machine (searched {string.Join(", ", candidates)}): {ChromiumBrowsers.InstallHint}.";
            Assert.False(ChromiumBrowsers.UnderCi, $"CI=true and {missing} (.ci/run installs Debian's chromium.)");
            skipNotice.Report(nameof(VoicePageBrowserTests), missing);
            Skip.If(true, missing);
        }

        using var spoken = Fixture.CreateTemporaryDirectory();
        string microphone = Path.Combine(spoken.Path, "question.wav");
        // Half a second of silence, the question, then two seconds of silence: the page's turn detection ends the turn.
        Pcm16Wave.WriteFile(microphone, [.. new float[8000], .. fixture.Question, .. new float[32000]], 16000);

        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();

        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Timeout = 60_000,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", $"--use-file-for-fake-audio-capture={microphone}%noloop",
            ],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 900, Height = 700 } });
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);

        await page.GotoAsync(address.ToString());
        await page.ClickAsync("#start");

        // Locator assertions wait (up to the timeout) for what the page shows.
        var wait = new LocatorAssertionsToHaveAttributeOptions { Timeout = 120_000 };
        await Assertions.Expect(page.Locator("#audio-seconds")).ToHaveAttributeAsync("data-has-audio", "true", wait);
        await answered(page);
        await Assertions.Expect(page.Locator(".turn.user").First).ToBeVisibleAsync(new LocatorAssertionsToBeVisibleOptions { Timeout = 30_000 });
        await Assertions.Expect(page.Locator("#ttfa")).Not.ToHaveTextAsync("–", new LocatorAssertionsToHaveTextOptions { Timeout = 30_000 });

        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        Assert.Empty(errors);
    }
}
