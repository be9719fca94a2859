using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>The benchmark's figures as tables on standard error: issue 17's goals, model types side by side, the soak.</summary>
internal static class BenchReport
{
    private const double OneChunkOfSpeechMs = 4 * 2048 / 24.0;

    /// <summary>One figure of a run: where it is in the JSON, and the goal it is held to, if any.</summary>
    private sealed record Figure(string Name, string Path, string? Goal = null, Func<double, bool>? Met = null, Func<JsonNode, double?>? Compute = null);

    private static readonly Figure[] Figures =
    [
        new("real-time factor, one answer", "answer_single.real_time_factor", "<= 0.30", v => v <= 0.30),
        new("real-time factor, batch-parallel", "answer_batch_parallel.real_time_factor", "<= 0.40", v => v <= 0.40),
        new("first speech, 1.2 s question, fast encoder (s)", "answer_single.first_speech_p50_s", "<= 0.5", v => v <= 0.5),
        new("engine step, one answer (ms)", "answer_single.step_ms"),
        new("engine step, batch-parallel (ms)", "answer_batch_parallel.step_ms"),
        new("bare one-row decode (ms)", "engine_bare_decode_1_row_ms"),
        new("batch-parallel step / bare one-row decode", "", "<= 1.5", v => v <= 1.5,
            json => Number(json, "answer_batch_parallel.step_ms") / Number(json, "engine_bare_decode_1_row_ms")),
        new("8 answers: speech seconds per second", "concurrent_8.speech_seconds_per_second", ">= 8", v => v >= 8),
        new("8 answers: worst answer's real-time factor", "concurrent_8.worst_answer_real_time_factor", "< 1", v => v < 1),
        new("8 answers: worst first speech (s)", "concurrent_8.first_speech_worst_s", "<= 2", v => v <= 2),
        new("4 answers: speech seconds per second", "concurrent_4.speech_seconds_per_second"),
        new("peak working set, one answer (MiB)", "process_peak_working_set_1_answers_mib", "<= 1229 (1.2 GB)", v => v <= 1228.8),
        new("peak working set, eight answers (MiB)", "process_peak_working_set_8_answers_mib"),
        new("exact encoder, 2 s question (ms)", "encoder_exact_ms", "<= 3000", v => v <= 3000),
        new("codec in one answer (s per s of speech)", "answer_single.codec_seconds_per_second_of_speech", "<= 0.08", v => v <= 0.08),
        new("others' longest step gap while a 10 s question joins (ms)", "joining_prompt.longest_step_gap_of_the_others_ms", $"<= {OneChunkOfSpeechMs:F0} (one chunk)", v => v <= OneChunkOfSpeechMs),
    ];

    /// <summary>The goals of one run, met or not.</summary>
    public static void WriteGoals(JsonNode run)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("issue 17's goals").AddColumns("figure", "measured", "goal", "");
        foreach (var figure in Figures)
        {
            double? value = Value(run, figure);
            string met = value is not { } v || figure.Met is null ? "" : figure.Met(v) ? "[green]met[/]" : "[red]not met[/]";
            table.AddRow(Markup.Escape(figure.Name), Format(value), Markup.Escape(figure.Goal ?? ""), met);
        }

        BenchTools.Console.Write(table);
        if (run["concurrent_1"] is not null)
        {
            var curve = new Table().Border(TableBorder.Rounded).Title("answers at once")
                .AddColumns("answers", "speech s/s", "first speech p50 / p95 / worst (s)", "step (ms)", "mix / llama / heads / sampling / codec (ms a step)", "peak (MiB)");
            foreach (var level in run.AsObject().Where(p => p.Key.StartsWith("concurrent_", StringComparison.Ordinal)).Select(p => p.Value!))
            {
                var split = level["step_split_ms"]!;
                curve.AddRow(
                    Format(Number(level, "answers")), Format(Number(level, "speech_seconds_per_second")),
                    $"{Format(Number(level, "first_speech_p50_s"))} / {Format(Number(level, "first_speech_p95_s"))} / {Format(Number(level, "first_speech_worst_s"))}",
                    Format(Number(level, "step_ms")),
                    string.Join(" / ", new[] { "embedding_mix_and_batch", "llama_decode", "output_heads", "sampling_and_rules", "codec_between_steps" }.Select(k => Format(Number(split, k)))),
                    Format(Number(level, "peak_working_set_mib")));
            }

            BenchTools.Console.Write(curve);
        }
    }

    /// <summary>Several model types, their figures side by side.</summary>
    public static void WriteComparison(IReadOnlyList<(string Path, JsonNode Figures)> runs)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("model types").AddColumn("figure");
        foreach (var (path, _) in runs)
        {
            table.AddColumn(Markup.Escape(Path.GetFileName(Path.TrimEndingDirectorySeparator(path))));
        }

        table.AddColumn("goal");
        foreach (var figure in Figures)
        {
            table.AddRow([Markup.Escape(figure.Name), .. runs.Select(run => Format(Value(run.Figures, figure))), Markup.Escape(figure.Goal ?? "")]);
        }

        BenchTools.Console.Write(table);
    }

    /// <summary>The soak's memory and errors.</summary>
    public static void WriteSoak(JsonNode soak)
    {
        BenchTools.Console.MarkupLineInterpolated(
            $"soak: {soak["answers"]} answers in {soak["seconds"]} s, {soak["completed"]} completed, {soak["cancelled"]} cancelled, [bold]{soak["errors"]} errors[/]; resident memory every 100 answers (MiB): {string.Join(" ", soak["resident_mib_every_100_answers"]!.AsArray().Select(v => v!.ToString()))}; slope over the second half {soak["resident_mib_slope_per_1000_answers_second_half"]} MiB per 1000 answers.");
    }

    private static double? Value(JsonNode run, Figure figure)
    {
        try
        {
            return figure.Compute is { } compute ? compute(run) : Number(run, figure.Path);
        }
        catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static double Number(JsonNode node, string path)
    {
        JsonNode? current = node;
        foreach (string part in path.Split('.'))
        {
            current = current?[part];
        }

        return current?.GetValue<double>() ?? throw new InvalidOperationException($"No figure {path}.");
    }

    private static string Format(double? value) => value is not { } v || double.IsNaN(v) ? "—" : v.ToString(Math.Abs(v) >= 100 ? "F0" : "0.###", CultureInfo.InvariantCulture);
}
