using System.CommandLine;
using System.Text.Json;
using MiniOmni.SK.Cli.Bench;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>
/// <c>miniomni accuracy</c>: every head of quantized models against the f32 model, teacher-forced over the fixture's
/// tasks or a long synthetic answer (see <see cref="TeacherForcedAccuracy"/>).
/// </summary>
internal static class AccuracyCommand
{
    public static Command Create()
    {
        var reference = new Option<DirectoryInfo>("--reference") { Description = "The f32 model directory the others are compared with.", Required = true };
        var models = new Option<string[]>("--model") { Description = "Model directories to compare (DIR, or DIR:q8_0 / DIR:q4_0 to hold the text head so).", Required = true, AllowMultipleArgumentsPerToken = true };
        var fixture = new Option<DirectoryInfo?>("--fixture") { Description = "A golden fixture (tests/Fixtures/tiny-a): its tasks' answers are fed; the models must be converted from it. Without: a long answer the f32 model generates." };
        var steps = new Option<int>("--answer-steps") { Description = "Steps of the synthetic answer.", DefaultValueFactory = _ => 256 };
        var output = new Option<FileInfo?>("--json") { Description = "Also write the JSON to this file." };
        var command = new Command("accuracy", "Compare every head of quantized models with the f32 model, teacher-forced; prints JSON and a table on standard error.")
        {
            reference, models, fixture, steps, output,
        };
        command.SetAction(parse =>
        {
            var results = BenchTools.Status("teacher-forcing the models", () => TeacherForcedAccuracy.Compare(
                parse.GetRequiredValue(reference).FullName,
                [.. parse.GetRequiredValue(models).Select(AccuracyModel.Parse)],
                parse.GetValue(fixture)?.FullName,
                Math.Max(2, parse.GetValue(steps))));
            var table = new Table().Border(TableBorder.Rounded).Title("each head against the f32 model: top-1 agreement / RMS error over the logits' spread / largest error")
                .AddColumn("model");
            var heads = results.Values.First().Keys.ToList();
            foreach (string head in heads)
            {
                table.AddColumn(head);
            }

            foreach (var (model, accuracy) in results)
            {
                table.AddRow([Markup.Escape(model), .. heads.Select(head => $"{accuracy[head].Top1Agreement:P1} / {accuracy[head].RelativeRmsError:F4} / {accuracy[head].MaxError:F3}")]);
            }

            BenchTools.Console.Write(table);
            var json = JsonSerializer.Serialize(results.ToDictionary(r => r.Key, r => r.Value.ToDictionary(h => h.Key, h => new
            {
                steps = h.Value.Steps,
                top1_agreement = Math.Round(h.Value.Top1Agreement, 4),
                relative_rms_error = Math.Round(h.Value.RelativeRmsError, 5),
                max_error = Math.Round(h.Value.MaxError, 4),
            })), new JsonSerializerOptions { WriteIndented = true });
            Console.WriteLine(json);
            if (parse.GetValue(output) is { } file)
            {
                File.WriteAllText(file.FullName, json);
            }
        });
        return command;
    }
}
