using System.CommandLine;
using System.Text.Json;
using MiniOmni.SK.Server.Hosting;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>The options the <c>miniomni bench</c> subcommands share, how they are read, and how the figures go out.</summary>
internal static class BenchOptions
{
    private static readonly JsonSerializerOptions Figures = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary><c>--model</c>: one model directory.</summary>
    public static Option<DirectoryInfo> Model() =>
        new("--model") { Description = "A MiniOmni.SK model directory (e.g. from `miniomni synth --preset mini-omni --type q8_0`).", Required = true };

    /// <summary><c>--question-seconds</c>: the length of every turn's question; read it with <see cref="QuestionSecondsOf"/>.</summary>
    public static Option<double> QuestionSeconds() =>
        new("--question-seconds") { Description = "Length of the question every turn asks, in seconds (up to 30).", DefaultValueFactory = _ => 2.4 };

    /// <summary><c>--turns</c>: turns of each conversation.</summary>
    public static Option<int> Turns() =>
        new("--turns") { Description = "Turns of each conversation; turn 1 is the first request after the engine is ready.", DefaultValueFactory = _ => 3 };

    /// <summary><c>--niceness</c>, defaulting to the server's.</summary>
    public static Option<int> Niceness() =>
        new("--niceness") { Description = "Nice value of the engine's threads, as the server's MiniOmni:EngineNiceness (0: unchanged).", DefaultValueFactory = _ => new MiniOmniServerOptions().EngineNiceness };

    /// <summary><c>--json</c>: a file the figures are written to as well.</summary>
    public static Option<FileInfo?> Json() => new("--json") { Description = "Also write the JSON to this file." };

    /// <summary>The question's length, checked to be one Mini-Omni hears.</summary>
    public static double QuestionSecondsOf(ParseResult parse, Option<double> option)
    {
        double seconds = parse.GetValue(option);
        return seconds is < 0.2 or > 30 ? throw new ArgumentException($"--question-seconds is {seconds}; a question lasts 0.2 to 30 s.") : seconds;
    }

    /// <summary>The paths a comma-separated <paramref name="value"/> names, each one of <paramref name="known"/>.</summary>
    public static string[] PathsOf(string? value, IReadOnlyList<string> known) =>
        [.. (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => known.Contains(p) ? p : throw new ArgumentException($"--paths takes {string.Join(", ", known)}; got '{p}'."))];

    /// <summary>The encoder mode <paramref name="name"/> names (fast or exact), for the option <paramref name="option"/>.</summary>
    public static EncoderMode EncoderOf(string? name, string option) => (name ?? "").ToLowerInvariant() switch
    {
        "fast" => EncoderMode.Fast,
        "exact" => EncoderMode.Exact,
        var other => throw new ArgumentException($"{option} takes fast or exact; got '{other}'."),
    };

    /// <summary>Prints the figures as JSON on standard output, and writes them to <paramref name="file"/> too when given.</summary>
    public static async Task WriteAsync(object figures, FileInfo? file, CancellationToken cancellationToken)
    {
        string json = JsonSerializer.Serialize(figures, Figures);
        Console.WriteLine(json);
        if (file is not null)
        {
            await File.WriteAllTextAsync(file.FullName, json, cancellationToken).ConfigureAwait(false);
        }
    }
}
