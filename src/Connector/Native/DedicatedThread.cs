namespace MiniOmni.SK.Native;

/// <summary>
/// Runs occasional heavy compute (the encoder) on a thread that ends with it. The CPU backend's OpenMP runtime keeps a
/// team of worker threads for every thread that ran a graph, for as long as that thread lives: a thread-pool thread
/// would keep its team for good, and once a process has more such workers than cores libgomp stops spinning at
/// barriers, which slows every graph in the process, the backbone's steps included. A thread that ends frees its team.
/// </summary>
internal static class DedicatedThread
{
    /// <summary>Runs <paramref name="work"/> on a new background thread named <paramref name="name"/>, at nice value <paramref name="niceness"/> (0: normal).</summary>
    /// <returns>The work's result or exception; continuations do not run on the dedicated thread.</returns>
    public static Task<T> RunAsync<T>(string name, Func<T> work, int niceness = 0)
    {
        ArgumentNullException.ThrowIfNull(work);
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            ComputeThreadPriority.Lower(niceness);
            try
            {
                result.SetResult(work());
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return result.Task;
    }
}
