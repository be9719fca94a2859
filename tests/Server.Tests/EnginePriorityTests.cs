using System.Globalization;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Tests.Infrastructure;

namespace MiniOmni.SK.Server.Tests;

/// <summary>
/// The engine's compute threads give way to the server's: they run at the lowered priority, while the thread pool, which
/// runs Kestrel and every request's code, keeps its own (Linux threads inherit their nice value from the thread that
/// creates them, so a pool grown from the decode loop's wake-ups would run the server at the engine's priority).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class EnginePriorityTests(FixtureEngine fixture)
{
    private const int Niceness = 7;

    [Fact]
    public async Task ComputeThreadsRunLoweredWhileThePoolStaysAtNormalPriorityAndAnswersAreUnchanged()
    {
        Assert.True(OperatingSystem.IsLinux(), "the engine lowers its compute threads' priority on Linux, where this test runs");
        int normal = NiceOf(Environment.ProcessId);
        var options = new MiniOmniEngineOptions { ContextSize = 2048, Threads = 2, FullPrecisionCache = true, ComputeNiceness = Niceness };
        using var engine = MiniOmniEngine.Load(fixture.ModelPath, options);

        // Spoken questions (the encoder's thread) and answers side by side (the decode loop's wake-ups), as a server sees them,
        // while every idle worker of the pool is kept busy and the pool may grow: the decode loop's wake-ups make it start
        // threads.
        var requests = Enumerable.Range(0, 6).Select(i => new MiniOmniRequest { Task = i % 2 == 0 ? MiniOmniTask.A1A2 : MiniOmniTask.A1T2, Audio = fixture.Question, MaxTokens = 24 }).ToArray();
        string[] answers;
        ThreadPool.GetMinThreads(out int minWorkers, out int minIo);
        using (var release = new ManualResetEventSlim())
        {
            ThreadPool.SetMinThreads(256, minIo);
            try
            {
                var busy = Enumerable.Range(0, 2 * Environment.ProcessorCount + 8).Select(_ => Task.Factory.StartNew(() => release.Wait(TimeSpan.FromMinutes(2)), CancellationToken.None, TaskCreationOptions.None, TaskScheduler.Default)).ToArray();
                var answering = requests.Select(r => Task.Run(() => TokensAsync(engine, r))).ToArray();
                answers = await Task.WhenAll(answering);
                release.Set();
                await Task.WhenAll(busy);
            }
            finally
            {
                release.Set();
                ThreadPool.SetMinThreads(minWorkers, minIo);
            }
        }

        var threads = Threads();

        // The lowered engine's decode loop and the OpenMP workers it started (they take its name), and nothing else.
        var lowered = threads.Where(t => t.Nice == Math.Max(Niceness, normal)).ToList();
        Assert.Contains(lowered, t => t.Name.StartsWith("MiniOmni decode", StringComparison.Ordinal));
        Assert.All(lowered, t => Assert.StartsWith("MiniOmni", t.Name, StringComparison.Ordinal));
        var pool = threads.Where(t => t.Name.StartsWith(".NET TP Worker", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(pool);
        Assert.All(pool, t => Assert.True(t.Nice == normal, $"thread-pool worker {t.Id} runs at nice {t.Nice}, not {normal}"));
        Assert.All(threads.Where(t => t.Name.StartsWith("MiniOmni wakeups", StringComparison.Ordinal)), t => Assert.Equal(normal, t.Nice));

        // Priority changes nothing else: the same answers as at normal priority.
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(await TokensAsync(fixture.Engine, requests[i]), answers[i]);
        }
    }

    [Fact]
    public void ANicenessOutsideLinuxsRangeIsRefusedByName()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new MiniOmniEngineOptions { ComputeNiceness = 20 }.Validate());
        Assert.Equal(nameof(MiniOmniEngineOptions.ComputeNiceness), error.ParamName);
    }

    [Fact]
    public void AThreadThatEndedBeforeItsFilesWereReadIsLeftOutOfTheSnapshot()
    {
        Assert.True(OperatingSystem.IsLinux(), "the snapshot reads Linux's /proc");
        string? ended = null;
        var thread = new Thread(() => ended = Path.Combine("/proc", new DirectoryInfo("/proc/thread-self").LinkTarget!));
        thread.Start();
        thread.Join();
        // The managed thread has returned; the kernel removes its task directory once the native thread is gone.
        Assert.True(SpinWait.SpinUntil(() => !Directory.Exists(ended), TimeSpan.FromSeconds(30)), $"{ended} still exists");
        string current = Path.Combine("/proc", new DirectoryInfo("/proc/thread-self").LinkTarget!);

        var threads = Threads([ended!, current]);

        Assert.Equal([int.Parse(Path.GetFileName(current), CultureInfo.InvariantCulture)], threads.Select(t => t.Id));
    }

    private static async Task<string> TokensAsync(IMiniOmniEngine engine, MiniOmniRequest request)
    {
        await foreach (var update in engine.GenerateAsync(request))
        {
            if (update is AnswerCompleted done)
            {
                return string.Join("|", done.Tokens.Select(stream => string.Join(",", stream)));
            }
        }

        throw new InvalidOperationException("The answer ended without completing.");
    }

    private sealed record ThreadInfo(int Id, string Name, int Nice);

    // A snapshot of the process's threads. A thread may end between the listing of /proc/self/task and the reading of its
    // files (the kernel then answers ENOENT or ESRCH, and its directory is gone): an ended thread runs at no priority, so it
    // is left out of the snapshot. Any other failure to read, of a thread that still exists, fails the test.
    private static List<ThreadInfo> Threads() => Threads(Directory.EnumerateDirectories("/proc/self/task"));

    private static List<ThreadInfo> Threads(IEnumerable<string> taskDirectories)
    {
        var threads = new List<ThreadInfo>();
        foreach (string dir in taskDirectories)
        {
            int id = int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
            if (TryRead(dir, "comm") is not { } comm || TryRead(dir, "stat") is not { } stat)
            {
                continue;
            }

            threads.Add(new ThreadInfo(id, comm.TrimEnd('\n'), NiceIn(stat)));
        }

        return threads;
    }

    // The file's text, or null when the thread ended before it could be read (its directory no longer exists).
    private static string? TryRead(string taskDirectory, string file)
    {
        try
        {
            return File.ReadAllText(Path.Combine(taskDirectory, file));
        }
        catch (IOException) when (!Directory.Exists(taskDirectory))
        {
            return null;
        }
    }

    private static int NiceOf(int thread) => NiceIn(File.ReadAllText($"/proc/self/task/{thread}/stat"));

    // Field 19 of a task's stat is its nice value (the command name, field 2, may hold spaces: count from its ')').
    private static int NiceIn(string stat)
    {
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[16], CultureInfo.InvariantCulture);
    }
}
