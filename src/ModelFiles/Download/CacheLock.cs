using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// Exclusive use of a cache directory, across threads (a semaphore per directory) and processes (a lock file held
/// open without sharing, which .NET turns into an advisory lock on Unix and a sharing lock on Windows).
/// </summary>
internal sealed class CacheLock : IDisposable
{
    private const string FileName = ".lock";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> InProcess = new(OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);

    private readonly SemaphoreSlim _gate;
    private readonly FileStream _file;

    private CacheLock(SemaphoreSlim gate, FileStream file)
    {
        _gate = gate;
        _file = file;
    }

    public static async Task<CacheLock> AcquireAsync(string directory, ILogger logger, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName);
        var gate = InProcess.GetOrAdd(path, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            bool told = false;
            while (true)
            {
                try
                {
                    // The file is never deleted: deleting it would let a waiter lock a new file while another still holds the old one.
                    return new CacheLock(gate, new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
                }
                catch (IOException) when (!cancellationToken.IsCancellationRequested)
                {
                    if (!told)
                    {
                        logger.LogInformation("Another process is using the model cache {Directory}; waiting for it to finish.", directory);
                        told = true;
                    }

                    await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            gate.Release();
            throw;
        }
    }

    public void Dispose()
    {
        _file.Dispose();
        _gate.Release();
    }
}
