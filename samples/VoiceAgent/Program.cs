using System.ClientModel;
using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using MiniOmni.SK.Engine;
using OpenAI;

namespace MiniOmni.SK.Samples.VoiceAgent;

/// <summary>
/// A Semantic Kernel agent with a time and a unit-conversion plugin, answering by voice. With <c>--speak-with</c>, another
/// model (any OpenAI-compatible endpoint) does the thinking and Mini-Omni hears the question and speaks the answer while it
/// streams (the library's <c>UseMiniOmniVoice</c>).
/// </summary>
public static class Program
{
    private static readonly Option<string?> SpeakWith = new("--speak-with")
    {
        Description = "Think with the chat model of this OpenAI-compatible endpoint (e.g. http://localhost:11434/v1, https://api.openai.com/v1) " +
            "and read its answer aloud with Mini-Omni. The key is OPENAI_API_KEY (none needed for a local server).",
    };

    private static readonly Option<string> SpeakWithModel = new("--speak-with-model") { Description = "The endpoint's model.", DefaultValueFactory = _ => "gpt-4o-mini" };

    private const string Instructions = "You are a helpful voice assistant. Use the tools for the time and for unit conversions. Answer in two or three short spoken sentences.";

    public static Task<int> Main(string[] args) => SampleCommand.RunAsync("A Semantic Kernel voice agent with time and unit plugins.", args, async (arguments, cancellation) =>
    {
        var builder = Kernel.CreateBuilder();
        builder.Services.AddSingleton(arguments.Loggers);
        builder.AddMiniOmni(arguments.Model);
        builder.Plugins.AddFromObject(new TimePlugin(TimeProvider.System), "Time");
        builder.Plugins.AddFromType<UnitsPlugin>("Units");
        var kernel = builder.Build();

        if (arguments.Parse.GetValue(SpeakWith) is { } address)
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            {
                throw new ArgumentException($"--speak-with wants an http(s) address of an OpenAI-compatible endpoint; '{address}' is not one.");
            }

            await ThinkElsewhereAndSpeakAsync(kernel, arguments, endpoint, arguments.Parse.GetValue(SpeakWithModel)!, cancellation);
            return;
        }

        // The registered chat client is the plain one: the application adds function invocation (Semantic Kernel's, which
        // runs the kernel's function filters), and the kernel's plugins are its tools.
        var chat = kernel.GetRequiredService<IChatClient>().AsBuilder().UseKernelFunctionInvocation(arguments.Loggers).Build(kernel.Services);
        var options = new ChatOptions
        {
            MaxOutputTokens = arguments.MaxTokens,
            Instructions = Instructions,
            Tools = [.. kernel.Plugins.SelectMany(plugin => plugin)],
        }.WithMiniOmniOutput(MiniOmniOutput.TextAndSpeech);
        using var speech = new SpokenAnswer(play: true);
        var clock = Stopwatch.StartNew();

        await foreach (var update in chat.GetStreamingResponseAsync([arguments.Question()], options, cancellation))
        {
            Console.Write(update.Text);
            foreach (var call in update.Contents.OfType<Microsoft.Extensions.AI.FunctionCallContent>())
            {
                Console.WriteLine($"[calling {call.Name}]");
            }

            foreach (var chunk in update.Contents.OfType<DataContent>())
            {
                speech.Add(chunk, clock.Elapsed);
            }
        }

        Console.WriteLine();
        Finish(speech, arguments.OutWav);
    }, needsQuestion: true, SpeakWith, SpeakWithModel);

    // Mini-Omni hears (a spoken question is transcribed), the other model thinks with the kernel's plugins, and Mini-Omni
    // speaks its answer while it streams: the library's voice middleware around the thinker (UseMiniOmniVoice).
    private static async Task ThinkElsewhereAndSpeakAsync(Kernel kernel, SampleArguments arguments, Uri endpoint, string model, CancellationToken cancellation)
    {
        var question = arguments.Input is { } wav
            ? new ChatMessage(ChatRole.User, [new DataContent(await File.ReadAllBytesAsync(wav, cancellation), wav.EndsWith(".mp3", StringComparison.OrdinalIgnoreCase) ? "audio/mpeg" : "audio/wav")])
            : new ChatMessage(ChatRole.User, arguments.Text ?? "");
        string key = Environment.GetEnvironmentVariable("OPENAI_API_KEY") is { Length: > 0 } k ? k : "none";
        using var voice = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = endpoint })
            .GetChatClient(model).AsIChatClient()
            .AsBuilder()
            .UseMiniOmniVoice(kernel.GetRequiredService<IMiniOmniEngine>(), options => options.TranscriptMaxTokens = Math.Max(1, arguments.MaxTokens))
            .UseKernelFunctionInvocation(arguments.Loggers)
            .Build(kernel.Services);
        var options = new ChatOptions { Instructions = Instructions, Tools = [.. kernel.Plugins.SelectMany(plugin => plugin)] };
        using var speech = new SpokenAnswer(play: true);
        var clock = Stopwatch.StartNew();
        await foreach (var update in voice.GetStreamingResponseAsync([question], options, cancellation))
        {
            if (update.AdditionalProperties?.TryGetValue(MiniOmniVoiceChatClient.TranscriptKey, out var heard) == true)
            {
                Console.WriteLine($"[heard] {heard}");
            }

            Console.Write(update.Text);
            foreach (var chunk in update.Contents.OfType<DataContent>())
            {
                speech.Add(chunk, clock.Elapsed);
            }
        }

        Console.WriteLine();
        if (speech.SampleCount == 0)
        {
            throw new ArgumentException($"{endpoint} ({model}) answered with no text to read aloud.");
        }

        Finish(speech, arguments.OutWav);
    }

    private static void Finish(SpokenAnswer speech, string? outWav)
    {
        Console.WriteLine($"{speech.SampleCount / 24000.0:F1} s of speech, the first after {speech.FirstAudio?.TotalSeconds:F2} s");
        if (outWav is { } path)
        {
            speech.Write(path);
            Console.WriteLine($"speech written to {path}");
        }
    }
}
