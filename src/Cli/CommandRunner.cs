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
        // Logs are messages, never a command's output: standard output stays for what scripts read (pull's directory).
        .AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace)
        .AddFilter(level => level >= (Environment.GetEnvironmentVariable("MINIOMNI_LOG") == "debug" ? LogLevel.Debug : LogLevel.Warning)));

    // Errors go to standard error, so that a failed command's last line on standard output is never mistaken for its result.
    private static IAnsiConsole Errors { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        try
        {
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ModelFileException or Audio.AudioFormatException or ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            Logging.CreateLogger("miniomni").LogDebug(e, "Command failed.");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Errors.MarkupLine("[yellow]cancelled[/]: nothing was written.");
            return 130;
        }
    }
}
