using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;

namespace MiniOmni.SK.Samples.VoiceAgent;

/// <summary>A Semantic Kernel agent with a time and a unit-conversion plugin, answering by voice.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => SampleCommand.RunAsync("A Semantic Kernel voice agent with time and unit plugins.", args, async (arguments, cancellation) =>
    {
        var builder = Kernel.CreateBuilder();
        builder.AddMiniOmni(arguments.Model);
        builder.Plugins.AddFromObject(new TimePlugin(TimeProvider.System), "Time");
        builder.Plugins.AddFromType<UnitsPlugin>("Units");
        var kernel = builder.Build();

        // The kernel's chat client invokes functions itself; the kernel's plugins are its tools.
        var chat = kernel.GetRequiredService<IChatClient>();
        var options = new ChatOptions
        {
            MaxOutputTokens = arguments.MaxTokens,
            Instructions = "You are a helpful voice assistant. Use the tools for the time and for unit conversions.",
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
        if (arguments.OutWav is { } path)
        {
            speech.Write(path);
            Console.WriteLine($"speech written to {path}");
        }
    });
}
