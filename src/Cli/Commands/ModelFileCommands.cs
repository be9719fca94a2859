using System.CommandLine;
using MiniOmni.SK.ModelFiles.Conversion;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>The model-file commands: convert the original releases, synthesise random model sets, inspect a directory.</summary>
internal static class ModelFileCommands
{
    public static Command Convert()
    {
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Mini-Omni checkpoint directory (lit_model.pth, model_config.yaml, tokenizer.json).", Required = true };
        var whisper = new Option<FileSystemInfo>("--whisper") { Description = "Whisper-small: openai small.pt, or a Hugging Face directory with model.safetensors.", Required = true };
        var snac = new Option<DirectoryInfo>("--snac") { Description = "SNAC 24 kHz directory (config.json, pytorch_model.bin).", Required = true };
        var output = OutputOption();
        var type = TypeOption();
        var command = new Command("convert", "Convert the original Mini-Omni, Whisper and SNAC releases into a MiniOmni.SK model directory.")
        {
            checkpoint, whisper, snac, output, type,
        };
        command.SetAction(parse =>
        {
            var fileType = ModelFileTypes.Parse(parse.GetRequiredValue(type));
            var sources = new ConversionSources(parse.GetRequiredValue(checkpoint).FullName, parse.GetRequiredValue(whisper).FullName, parse.GetRequiredValue(snac).FullName);
            string target = parse.GetRequiredValue(output).FullName;
            var model = ConsoleProgress.Run($"Converting to {fileType.ToName()} in {target}", progress =>
                ModelConverter.Convert(sources, target, fileType, progress, CommandRunner.Logging.CreateLogger("convert")));
            Report(model);
        });
        return command;
    }

    public static Command Synthesize()
    {
        var output = OutputOption();
        var type = TypeOption();
        var preset = new Option<string>("--preset") { Description = "Shapes: mini-omni (the release) or tiny (the test fixture).", DefaultValueFactory = _ => ModelPresets.MiniOmni.Name };
        preset.AcceptOnlyFromAmong([.. ModelPresets.All.Keys]);
        var seed = new Option<int>("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 1 };
        var tokenizer = new Option<FileInfo?>("--tokenizer") { Description = "A tokenizer.json to embed; by default a byte-level vocabulary." };
        var command = new Command("synth", "Write a model set of real shapes with random weights, for benchmarks and tests without downloads.")
        {
            output, type, preset, seed, tokenizer,
        };
        command.SetAction(parse =>
        {
            var fileType = ModelFileTypes.Parse(parse.GetRequiredValue(type));
            var shapes = ModelPresets.Get(parse.GetRequiredValue(preset));
            string target = parse.GetRequiredValue(output).FullName;
            var vocabulary = parse.GetValue(tokenizer) is { } file ? HfTokenizer.Load(file.FullName, shapes.Backbone.RowCount) : null;
            var model = ConsoleProgress.Run($"Synthesising {shapes.Name} ({fileType.ToName()}) in {target}", progress =>
                ModelSetWriter.WriteSynthetic(target, shapes, fileType, parse.GetValue(seed), vocabulary, progress, CommandRunner.Logging.CreateLogger("synth")));
            Report(model);
        });
        return command;
    }

    public static Command Inspect()
    {
        var directory = new Argument<DirectoryInfo>("model-dir") { Description = "A MiniOmni.SK model directory." };
        var command = new Command("inspect", "Show what a model directory holds: architecture, sizes, types, special ids.") { directory };
        command.SetAction(parse => Report(new ModelDirectory(parse.GetRequiredValue(directory).FullName)));
        return command;
    }

    private static Option<DirectoryInfo> OutputOption() =>
        new("--out") { Description = "Directory to write backbone.gguf, vocabulary.gguf and audio.gguf into.", Required = true };

    internal static Option<string> TypeOption()
    {
        var option = new Option<string>("--type") { Description = $"Weight type: {string.Join(", ", ModelFileTypes.Names)}.", DefaultValueFactory = _ => "q8_0" };
        option.AcceptOnlyFromAmong([.. ModelFileTypes.Names]);
        return option;
    }

    private static void Report(ModelDirectory model)
    {
        foreach (var file in ModelInspection.Inspect(model.Path))
        {
            var table = new Table().Border(TableBorder.Rounded).Title($"{Path.GetFileName(file.Path)} ({file.Architecture})").AddColumns("property", "value");
            table.AddRow("size", $"{file.SizeBytes / (1024.0 * 1024.0):F1} MiB");
            table.AddRow("tensors", $"{file.TensorCount} ({string.Join(", ", file.TensorsByType.Select(t => $"{t.Value} {t.Key}"))})");
            table.AddRow("parameters", $"{file.ParameterCount:N0}");
            foreach (var (key, value) in file.Properties)
            {
                table.AddRow(Markup.Escape(key), Markup.Escape(value));
            }

            table.AddRow("non-finite values", file.NonFiniteTensors.Count == 0
                ? $"none{(file.UnscannedTensors.Count > 0 ? $" ({file.UnscannedTensors.Count} quantized tensors not scanned)" : "")}"
                : $"[red]{Markup.Escape(string.Join("; ", file.NonFiniteTensors))}[/]: the weights are damaged (answers would be noise; the engine refuses them)");

            AnsiConsole.Write(table);
        }
    }
}
