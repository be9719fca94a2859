using System.Runtime.InteropServices;

namespace MiniOmni.SK.Native;

/// <summary>
/// Lowers a compute thread's scheduling priority (a higher Linux nice value), so the application's own threads (a
/// server's I/O, health checks, other sessions' audio) get the cores first whenever they have work while the engine
/// gets every cycle they leave. Called first on each compute thread, before it runs any graph: the OpenMP workers it
/// then starts inherit the value (Linux threads inherit it from the thread that creates them). .NET's thread pool does
/// not: its workers are not started by the threads that queue work (<c>EnginePriorityTests</c> checks both).
/// </summary>
internal static partial class ComputeThreadPriority
{
    /// <summary>The highest nice value Linux has.</summary>
    public const int MaxNiceness = 19;

    /// <summary>Lowers the calling thread to nice value <paramref name="niceness"/> (0: unchanged); whether it could.</summary>
    public static bool Lower(int niceness)
    {
        if (niceness <= 0 || !OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            // PRIO_PROCESS with a thread id addresses that one thread on Linux. A thread already lower is left as it is;
            // an unprivileged thread can never raise itself again.
            int thread = gettid();
            int target = Math.Min(niceness, MaxNiceness);
            return getpriority(0, thread) >= target || setpriority(0, thread, target) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setpriority(int which, int who, int priority);

    [LibraryImport("libc")]
    private static partial int getpriority(int which, int who);

    [LibraryImport("libc")]
    private static partial int gettid();
}
