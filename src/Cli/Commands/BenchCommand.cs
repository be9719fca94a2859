using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Native;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>
/// <c>miniomni bench</c>: times each stage and whole answers on a model directory and prints the figures as JSON (and
/// a table of issue 17's goals on standard error). Several <c>--model</c>s are benchmarked one after another, each in
/// a process of its own, and compared side by side.
/// </summary>
internal static class BenchCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    // A figure that could not be measured (no speech, too few points) is NaN.
    private static readonly JsonSerializerOptions Figures = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public static Command Create()
    {
        var models = new Option<DirectoryInfo[]>("--model") { Description = "A MiniOmni.SK model directory (e.g. from `miniomni synth --preset mini-omni`); give several to compare model types.", Required = true, AllowMultipleArgumentsPerToken = true };
        var repeats = new Option<int>("--repeats") { Description = "Runs per measurement; the median is reported.", DefaultValueFactory = _ => 3 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for every stage (default: all cores)." };
        var codecThreads = new Option<int?>("--codec-threads") { Description = "CPU threads of the speech decoder in whole answers (default: as --threads)." };
        var answersOnly = new Option<bool>("--answers-only") { Description = "Only time whole answers through the engine." };
        var encoderOnly = new Option<bool>("--encoder-only") { Description = "Only time the encoder (exact and fast; a quantized model's matrices against the same held as f32)." };
        var answerSteps = new Option<int>("--answer-steps") { Description = "Steps of each whole answer (256 is about 21 s of speech).", DefaultValueFactory = _ => 256 };
        var concurrency = new Option<string>("--concurrency") { Description = "Numbers of answers at once for the concurrency curve, comma-separated (empty: none).", DefaultValueFactory = _ => "1,2,4,8" };
        var soak = new Option<int>("--soak") { Description = "Instead of the figures: N answers in process (every task, 4 at a time, every fifth cancelled), with memory every 100 answers and its slope." };
        var peak = new Option<int>("--peak-answers") { Description = "Internal: load the engine, answer N questions at once, print the peak working set.", Hidden = true };
        var output = new Option<FileInfo?>("--json") { Description = "Also write the JSON to this file." };
        var command = new Command("bench", "Time the stages and whole answers on model directories; prints JSON (and the goals on standard error).")
        {
            models, repeats, threads, codecThreads, answersOnly, encoderOnly, answerSteps, concurrency, soak, peak, output,
        };
        command.Add(BenchServeCommand.Create());
        command.Add(BenchConversationCommand.Create());
        command.Add(BenchThinkerCommand.Create());
        command.Add(BenchThinkerCommand.CreateServe());
        command.SetAction(parse =>
        {
            var settings = new BenchSettings
            {
                Repeats = Math.Max(1, parse.GetValue(repeats)),
                Threads = parse.GetValue(threads),
                CodecThreads = parse.GetValue(codecThreads),
                AnswersOnly = parse.GetValue(answersOnly),
                EncoderOnly = parse.GetValue(encoderOnly),
                AnswerSteps = Math.Max(8, parse.GetValue(answerSteps)),
                Concurrency = ParseConcurrency(parse.GetValue(concurrency) ?? ""),
            };
            var directories = parse.GetRequiredValue(models).Select(d => new ModelDirectory(d.FullName).EnsureComplete()).ToList();
            JsonNode result;
            if (parse.GetValue(peak) is > 0 and var answers)
            {
                result = JsonSerializer.SerializeToNode(AnswerBenchmarks.Peak(directories[0], settings, answers), Figures)!;
            }
            else if (parse.GetValue(soak) is > 0 and var soakAnswers)
            {
                result = JsonSerializer.SerializeToNode(SoakBenchmark.Run(directories[0], settings, soakAnswers), Figures)!;
                BenchReport.WriteSoak(result);
            }
            else if (directories.Count > 1)
            {
                // Each model type in a process of its own, so that neither's memory or OpenMP threads weigh on the other.
                var runs = directories.Select(directory => (directory.Path, Figures: Child(parse.Tokens.Select(t => t.Value), directory))).ToList();
                result = new JsonObject(runs.Select(run => KeyValuePair.Create(run.Path, (JsonNode?)run.Figures)));
                BenchReport.WriteComparison(runs);
            }
            else
            {
                result = JsonSerializer.SerializeToNode(Run(directories[0], settings), Figures)!;
                BenchReport.WriteGoals(result);
            }

            string json = result.ToJsonString(Indented);
            Console.WriteLine(json);
            if (parse.GetValue(output) is { } file)
            {
                File.WriteAllText(file.FullName, json);
            }
        });
        return command;
    }

    private static IReadOnlyList<int> ParseConcurrency(string text) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(part =>
            int.TryParse(part, out int n) && n is > 0 and <= 64 ? n : throw new ArgumentException($"--concurrency takes numbers of answers from 1 to 64, comma-separated; got '{part}'."))];

    private static Dictionary<string, object> Run(ModelDirectory directory, BenchSettings settings)
    {
        var figures = new Dictionary<string, object>
        {
            ["model"] = directory.Path,
            ["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            ["devices"] = GgmlDevices.DeviceNames(),
            ["repeats"] = settings.Repeats,
        };
        if (!settings.AnswersOnly)
        {
            // On a thread that ends afterwards, as the engine runs its encoder: this thread's OpenMP team would
            // otherwise outlive the stage figures and slow the engine's (see DedicatedThread).
            DedicatedThread.RunAsync("bench stages", () =>
            {
                StageBenchmarks.Run(directory, settings, figures);
                return 0;
            }).GetAwaiter().GetResult();
        }

        if (settings.EncoderOnly)
        {
            return figures;
        }

        AnswerBenchmarks.Run(directory, settings, figures);
        // A process that only loads the engine and answers: one answer, and eight at once.
        foreach (int answers in new[] { 1, 8 })
        {
            var args = new List<string> { "bench", "--model", directory.Path, "--peak-answers", answers.ToString(), "--answer-steps", settings.AnswerSteps.ToString() };
            if (settings.Threads is { } threads)
            {
                args.AddRange(["--threads", threads.ToString()]);
            }

            figures[$"process_peak_working_set_{answers}_answers_mib"] = BenchTools.Status($"peak memory, {answers} answer(s) in a fresh process", () =>
                Child(args)["peak_working_set_mib"]!.GetValue<double>());
        }

        figures["peak_working_set_mib"] = Math.Round(BenchTools.PeakResidentMiB(), 1);
        return figures;
    }

    // This command again, for one model, in a child process; its JSON.
    private static JsonNode Child(IEnumerable<string> tokens, ModelDirectory directory)
    {
        var args = new List<string> { "bench" };
        var list = tokens.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is "--model" or "--json")
            {
                // Skip the option and its values (every value up to the next option).
                while (i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    i++;
                }

                continue;
            }

            if (list[i] != "bench")
            {
                args.Add(list[i]);
            }
        }

        args.AddRange(["--model", directory.Path]);
        BenchTools.Console.MarkupLineInterpolated($"[grey]bench: {directory.Path} in a process of its own[/]");
        return Child(args);
    }

    private static JsonNode Child(IReadOnlyList<string> arguments)
    {
        string json = Path.Combine(Path.GetTempPath(), $"miniomni-bench-{Guid.NewGuid():N}.json");
        List<string> args = [.. arguments, "--json", json];
        // The same tool: its own executable, or the host with its assembly when run as `dotnet miniomni.dll`.
        string executable = Environment.ProcessPath ?? throw new InvalidOperationException("The benchmark cannot find its own executable to run a child process.");
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(executable).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(typeof(BenchCommand).Assembly.Location);
        }

        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {executable}.");
            // Its standard output repeats the JSON; the figures are read from the file it writes.
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0 || !File.Exists(json))
            {
                throw new InvalidOperationException($"The benchmark's child process ({string.Join(' ', arguments)}) failed with exit code {process.ExitCode}.");
            }

            return JsonNode.Parse(File.ReadAllText(json)) ?? throw new InvalidOperationException("The benchmark's child process wrote no figures.");
        }
        finally
        {
            File.Delete(json);
        }
    }
}
