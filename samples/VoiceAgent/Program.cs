using System.ClientModel;
using System.CommandLine;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using OpenAI;

namespace MiniOmni.SK.Samples.VoiceAgent;

/// <summary>
/// A Semantic Kernel agent with a time and a unit-conversion plugin, answering by voice. With <c>--speak-with</c>, another
/// model (any OpenAI-compatible endpoint) does the thinking and Mini-Omni hears the question and reads the answer aloud.
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

    // Mini-Omni hears (a spoken question is transcribed), the other model thinks with the kernel's plugins, Mini-Omni reads aloud.
    private static async Task ThinkElsewhereAndSpeakAsync(Kernel kernel, SampleArguments arguments, Uri endpoint, string model, CancellationToken cancellation)
    {
        string question = arguments.Text ?? "";
        if (arguments.Input is { } wav)
        {
            await using var audio = File.OpenRead(wav);
            var hearing = new SpeechToTextOptions { AdditionalProperties = new() { [MiniOmniAudioOptions.MaxTokensKey] = arguments.MaxTokens } };
            question = (await kernel.GetRequiredService<ISpeechToTextClient>().GetTextAsync(audio, hearing, cancellation)).Text;
            Console.WriteLine($"[heard] {question}");
        }

        string key = Environment.GetEnvironmentVariable("OPENAI_API_KEY") is { Length: > 0 } k ? k : "none";
        using var thinker = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = endpoint })
            .GetChatClient(model).AsIChatClient()
            .AsBuilder().UseKernelFunctionInvocation(arguments.Loggers).Build(kernel.Services);
        var options = new ChatOptions { Instructions = Instructions, Tools = [.. kernel.Plugins.SelectMany(plugin => plugin)] };
        var answer = new StringBuilder();
        await foreach (var update in thinker.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, question)], options, cancellation))
        {
            Console.Write(update.Text);
            answer.Append(update.Text);
        }

        Console.WriteLine();
        if (answer.ToString().Trim().Length == 0)
        {
            throw new ArgumentException($"{endpoint} ({model}) answered with no text to read aloud.");
        }

        // Read aloud sentence by sentence: the first sentence plays while the next is computed.
        using var speech = new SpokenAnswer(play: true);
        var clock = Stopwatch.StartNew();
        await foreach (var update in kernel.GetRequiredService<ITextToSpeechClient>().GetStreamingAudioAsync(answer.ToString(), cancellationToken: cancellation))
        {
            foreach (var chunk in update.Contents.OfType<DataContent>())
            {
                speech.Add(chunk, clock.Elapsed);
            }
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
