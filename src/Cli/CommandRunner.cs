using System.CommandLine;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.ModelFiles;
using Spectre.Console;

namespace MiniOmni.SK.Cli;

/// <summary>Runs the parsed command and turns the errors users can act on into one clear line and a non-zero exit.</summary>
internal static class CommandRunner
{
    public static ILoggerFactory Logging { get; } = LoggerFactory.Create(builder => builder
        .AddSimpleConsole(options => options.SingleLine = true)
        .AddFilter(level => level >= (Environment.GetEnvironmentVariable("MINIOMNI_LOG") == "debug" ? LogLevel.Debug : LogLevel.Warning)));

    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        try
        {
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ModelFileException or Audio.AudioFormatException or ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            AnsiConsole.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            Logging.CreateLogger("miniomni").LogDebug(e, "Command failed.");
            return 1;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("[yellow]cancelled[/]: nothing was written.");
            return 130;
        }
    }
}
