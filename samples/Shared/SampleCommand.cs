using System.CommandLine;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK.Samples;

/// <summary>What every sample is asked: a model directory, a question as a WAV or as text, and where to put the spoken answer.</summary>
public sealed record SampleArguments(string Model, string? Input, string? Text, string? OutWav, int MaxTokens)
{
    /// <summary>The question as a chat message: the WAV's audio, or the text.</summary>
    public ChatMessage Question() => Input is not null
        ? new ChatMessage(ChatRole.User, [new DataContent(File.ReadAllBytes(Input), Input.EndsWith(".mp3", StringComparison.OrdinalIgnoreCase) ? "audio/mpeg" : "audio/wav")])
        : new ChatMessage(ChatRole.User, Text ?? "");
}

/// <summary>The samples' shared command line: <c>--model DIR (--input WAV | --text "...") [--out F.wav] [--max-tokens N]</c>.</summary>
public static class SampleCommand
{
    public static Task<int> RunAsync(string description, string[] args, Func<SampleArguments, CancellationToken, Task> run, bool needsQuestion = true)
    {
        var model = new Option<string>("--model") { Description = "A MiniOmni.SK model directory (from `miniomni convert`), or a model name (`mini-omni`) fetched and converted on first use.", Required = true };
        var input = new Option<FileInfo?>("--input") { Description = "The question as a WAV or MP3 file." };
        var text = new Option<string?>("--text") { Description = "The question as text." };
        var output = new Option<FileInfo?>("--out") { Description = "Write the spoken answer to this WAV file." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "The most steps of the answer.", DefaultValueFactory = _ => 200 };
        var command = new RootCommand(description) { model, input, text, output, maxTokens };
        command.SetAction(async (parse, cancellation) =>
        {
            var arguments = new SampleArguments(parse.GetRequiredValue(model), parse.GetValue(input)?.FullName, parse.GetValue(text), parse.GetValue(output)?.FullName, parse.GetValue(maxTokens));
            if (needsQuestion && (arguments.Input is null) == (arguments.Text is null))
            {
                Console.Error.WriteLine("Give the question with --input WAV or --text \"...\" (one of them).");
                return 2;
            }

            try
            {
                var directory = await MiniOmni.SK.ModelFiles.Download.ModelStore.ResolveAsync(arguments.Model, cancellationToken: cancellation);
                await run(arguments with { Model = directory.Path }, cancellation);
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or IOException or NotSupportedException or MiniOmni.SK.ModelFiles.ModelFileException or MiniOmni.SK.Audio.AudioFormatException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        return command.Parse(args).InvokeAsync();
    }
}
