using MiniOmni.SK.ModelFiles.Conversion;
using Spectre.Console;

namespace MiniOmni.SK.Cli;

/// <summary>Shows a conversion's stages as Spectre.Console progress bars (plain lines when output is redirected).</summary>
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
                var tasks = new Dictionary<string, ProgressTask>();
                var progress = new SynchronousProgress<ConversionProgress>(update =>
                {
                    if (!tasks.TryGetValue(update.Stage, out var task))
                    {
                        task = tasks[update.Stage] = context.AddTask(update.Stage, maxValue: Math.Max(1, update.Total));
                    }

                    task.MaxValue = Math.Max(1, update.Total);
                    task.Value = update.Done;
                    task.Description = update.Item is null ? update.Stage : $"{update.Stage}: {Markup.Escape(Shorten(update.Item))}";
                });
                T result = work(progress);
                foreach (var task in tasks.Values)
                {
                    task.Description = task.Description.Split(':')[0];
                    task.Value = task.MaxValue;
                }

                return result;
            });
    }

    private static string Shorten(string item) => item.Length <= 40 ? item : "…" + item[^39..];

}
