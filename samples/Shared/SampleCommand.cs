using System.CommandLine;
using LLama.Native;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.Samples;

/// <summary>What every sample is asked: a model directory, a question as a WAV or as text, and where to put the spoken answer.</summary>
public sealed record SampleArguments(string Model, string? Input, string? Text, string? OutWav, int MaxTokens, ILoggerFactory Loggers, ParseResult Parse)
{
    /// <summary>The question as a chat message: the WAV's audio, or the text.</summary>
    public ChatMessage Question() => Input is not null
        ? new ChatMessage(ChatRole.User, [new DataContent(File.ReadAllBytes(Input), Input.EndsWith(".mp3", StringComparison.OrdinalIgnoreCase) ? "audio/mpeg" : "audio/wav")])
        : new ChatMessage(ChatRole.User, Text ?? "");
}

/// <summary>
/// The samples' shared command line: <c>--model DIR (--input WAV | --text "...") [--out F.wav] [--max-tokens N] [--verbose]</c>,
/// plus a sample's own options. Logs, llama.cpp's own included, go to the console through Microsoft.Extensions.Logging:
/// warnings and up, everything from Information with <c>--verbose</c>.
/// </summary>
public static class SampleCommand
{
    public static Task<int> RunAsync(string description, string[] args, Func<SampleArguments, CancellationToken, Task> run, bool needsQuestion = true, params Option[] options)
    {
        var model = new Option<string>("--model") { Description = "A MiniOmni.SK model directory (from `miniomni convert`), or a model name (`mini-omni`) fetched and converted on first use.", Required = true };
        var input = new Option<FileInfo?>("--input") { Description = "The question as a WAV or MP3 file." };
        var text = new Option<string?>("--text") { Description = "The question as text." };
        var output = new Option<FileInfo?>("--out") { Description = "Write the spoken answer to this WAV file." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "The most steps of the answer.", DefaultValueFactory = _ => 200 };
        var verbose = new Option<bool>("--verbose") { Description = "Log everything from Information up (llama.cpp's own lines included); by default warnings and errors only." };
        var command = new RootCommand(description) { model, input, text, output, maxTokens, verbose };
        foreach (var option in options)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, cancellation) =>
        {
            SampleLogging.MinimumLevel = parse.GetValue(verbose) ? LogLevel.Information : LogLevel.Warning;
            var arguments = new SampleArguments(parse.GetRequiredValue(model), parse.GetValue(input)?.FullName, parse.GetValue(text), parse.GetValue(output)?.FullName, parse.GetValue(maxTokens), SampleLogging.Factory, parse);
            if (needsQuestion && (arguments.Input is null) == (arguments.Text is null))
            {
                Console.Error.WriteLine("Give the question with --input WAV or --text \"...\" (one of them).");
                return 2;
            }

            try
            {
                var store = new MiniOmni.SK.ModelFiles.Download.ModelStoreOptions { Logger = SampleLogging.Factory.CreateLogger("MiniOmni.SK.ModelStore") };
                var directory = await MiniOmni.SK.ModelFiles.Download.ModelStore.ResolveAsync(arguments.Model, store, cancellationToken: cancellation);
                await run(arguments with { Model = directory.Path }, cancellation);
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or IOException or NotSupportedException or HttpRequestException or MiniOmni.SK.ModelFiles.ModelFileException or MiniOmni.SK.Audio.AudioFormatException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        return command.Parse(args).InvokeAsync();
    }
}

/// <summary>
/// One console logger factory for the process: llama.cpp keeps the logger it is given for as long as the process runs, so
/// it is never disposed; the level is read at each line, so each run of a sample can set its own.
/// </summary>
public static class SampleLogging
{
    private static readonly Lazy<ILoggerFactory> Shared = new(() =>
    {
        var factory = LoggerFactory.Create(builder => builder
            .AddSimpleConsole(console => console.SingleLine = true)
            .SetMinimumLevel(LogLevel.Trace)
            .AddFilter((_, level) => level >= MinimumLevel));
        // llama.cpp's (and ggml's) own log lines, through the same loggers instead of straight to stderr.
        NativeLogConfig.llama_log_set(factory.CreateLogger("llama.cpp"));
        return factory;
    });

    /// <summary>The lowest level written.</summary>
    public static LogLevel MinimumLevel { get; set; } = LogLevel.Warning;

    /// <summary>The process's logger factory; the first use routes llama.cpp's log through it.</summary>
    public static ILoggerFactory Factory => Shared.Value;
}
