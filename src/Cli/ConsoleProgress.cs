using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;
using Spectre.Console;

namespace MiniOmni.SK.Cli;

/// <summary>Shows a conversion's stages, and a download's files, as Spectre.Console progress bars (plain lines when output is redirected).</summary>
internal static class ConsoleProgress
{
    public static T Run<T>(string title, Func<IProgress<ConversionProgress>, T> work)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]{title}[/]");
        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(context =>
            {
                var stages = new Bars(context);
                T result = work(new SynchronousProgress<ConversionProgress>(stages.Report));
                stages.Complete();
                return result;
            });
    }

    /// <summary>
    /// A download (the overall bytes and a bar per file) followed by a conversion (a bar per stage), shown on
    /// <paramref name="console"/> (standard output when null).
    /// </summary>
    public static Task<T> RunAsync<T>(string title, Func<IProgress<DownloadProgress>, IProgress<ConversionProgress>, Task<T>> work, IAnsiConsole? console = null)
    {
        console ??= AnsiConsole.Console;
        console.MarkupLineInterpolated($"[bold]{title}[/]");
        return console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var bars = new Bars(context);
                T result = await work(new SynchronousProgress<DownloadProgress>(bars.Report), new SynchronousProgress<ConversionProgress>(bars.Report)).ConfigureAwait(false);
                bars.Complete();
                return result;
            });
    }

    private static string Shorten(string item) => item.Length <= 40 ? item : "…" + item[^39..];

    /// <summary>One bar per conversion stage, per downloaded file, and one for the whole download.</summary>
    private sealed class Bars(ProgressContext context)
    {
        private const string Download = "download";
        private readonly Lock _lock = new();
        private readonly Dictionary<string, ProgressTask> _tasks = [];

        public void Report(ConversionProgress update)
        {
            lock (_lock)
            {
                var task = Task(update.Stage, update.Total);
                task.Value = update.Done;
                task.Description = update.Item is null ? update.Stage : $"{update.Stage}: {Markup.Escape(Shorten(update.Item))}";
            }
        }

        public void Report(DownloadProgress update)
        {
            lock (_lock)
            {
                Task(Download, update.TotalBytes).Value = update.BytesDone;
                Task($"{update.Repository}/{update.FileName}", update.FileBytes).Value = update.FileBytesDone;
            }
        }

        public void Complete()
        {
            lock (_lock)
            {
                foreach (var task in _tasks.Values)
                {
                    task.Description = task.Description.Split(':')[0];
                    task.Value = task.MaxValue;
                }
            }
        }

        private ProgressTask Task(string name, long total)
        {
            if (!_tasks.TryGetValue(name, out var task))
            {
                task = _tasks[name] = context.AddTask(Markup.Escape(name), maxValue: Math.Max(1, total));
            }

            task.MaxValue = Math.Max(1, total);
            return task;
        }
    }
}
