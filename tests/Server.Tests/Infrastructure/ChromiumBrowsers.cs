namespace MiniOmni.SK.Server.Tests.Infrastructure;

/// <summary>
/// Finds a Chromium-family browser for the browser tests on whatever machine runs them: an explicit
/// <c>MINIOMNI_TEST_BROWSER</c>, Debian's or Ubuntu's chromium (apt or snap), Google Chrome, Microsoft Edge, or the
/// browser Playwright installs for its own version. Playwright itself never downloads one (the tests set
/// <c>PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD</c>).
/// </summary>
public static class ChromiumBrowsers
{
    /// <summary>The environment variable that names the browser to use, ahead of every place searched.</summary>
    public const string OverrideVariable = "MINIOMNI_TEST_BROWSER";

    /// <summary>What installs a browser the tests find, for the message of a test that finds none.</summary>
    public const string InstallHint =
        "install one: `sudo apt-get install -y chromium` (Debian), `sudo apt-get install -y chromium-browser` (Ubuntu), Google Chrome or Microsoft Edge, " +
        "or Playwright's own: `pwsh tests/Server.Tests/bin/Debug/net10.0/playwright.ps1 install chromium`; or point " + OverrideVariable + " at a Chromium-family executable";

    /// <summary>True when the environment says this is a CI run (<c>CI=true</c>, as GitHub Actions, GitLab and .ci/run set it).</summary>
    public static bool UnderCi =>
        Environment.GetEnvironmentVariable("CI") is { } ci && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    /// <summary>
    /// The places searched, in order: the override, then the system's browsers, then <paramref name="playwrightsOwn"/>
    /// (the executable Playwright's own install of its Chromium would be at, from <c>IBrowserType.ExecutablePath</c>).
    /// </summary>
    public static IReadOnlyList<string> Candidates(string? playwrightsOwn)
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } chosen)
        {
            candidates.Add(chosen);
        }

        if (OperatingSystem.IsLinux())
        {
            candidates.AddRange(
            [
                "/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium",
                "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable", "/opt/google/chrome/chrome",
                "/usr/bin/microsoft-edge", "/usr/bin/microsoft-edge-stable", "/opt/microsoft/msedge/msedge",
            ]);
        }
        else if (OperatingSystem.IsMacOS())
        {
            foreach (string applications in new[] { "/Applications", Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "Applications") })
            {
                candidates.Add(Path.Combine(applications, "Google Chrome.app/Contents/MacOS/Google Chrome"));
                candidates.Add(Path.Combine(applications, "Chromium.app/Contents/MacOS/Chromium"));
                candidates.Add(Path.Combine(applications, "Microsoft Edge.app/Contents/MacOS/Microsoft Edge"));
            }
        }
        else if (OperatingSystem.IsWindows())
        {
            foreach (var folder in new[] { Environment.SpecialFolder.ProgramFiles, Environment.SpecialFolder.ProgramFilesX86, Environment.SpecialFolder.LocalApplicationData })
            {
                string root = Environment.GetFolderPath(folder);
                if (root.Length > 0)
                {
                    candidates.Add(Path.Combine(root, @"Google\Chrome\Application\chrome.exe"));
                    candidates.Add(Path.Combine(root, @"Microsoft\Edge\Application\msedge.exe"));
                    candidates.Add(Path.Combine(root, @"Chromium\Application\chrome.exe"));
                }
            }
        }

        if (!string.IsNullOrEmpty(playwrightsOwn))
        {
            candidates.Add(playwrightsOwn);
        }

        return candidates;
    }

    /// <summary>The first of <paramref name="candidates"/> that exists, or null.</summary>
    public static string? Find(IEnumerable<string> candidates) => candidates.FirstOrDefault(File.Exists);
}
