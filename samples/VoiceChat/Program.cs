using System.Diagnostics;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Samples.VoiceChat;

/// <summary>A question (WAV or text) in; the answer streamed as text on screen and as speech to a WAV and the speakers.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => SampleCommand.RunAsync("Ask Mini-Omni a question and hear the answer.", args, async (arguments, cancellation) =>
    {
        using var engine = MiniOmniEngine.Load(arguments.Model, loggers: arguments.Loggers);
        using IChatClient chat = engine.AsIChatClient();
        using var speech = new SpokenAnswer(play: true);
        var options = new ChatOptions { MaxOutputTokens = arguments.MaxTokens }.WithMiniOmniOutput(MiniOmniOutput.TextAndSpeech);
        var clock = Stopwatch.StartNew();

        await foreach (var update in chat.GetStreamingResponseAsync([arguments.Question()], options, cancellation))
        {
            Console.Write(update.Text);
            foreach (var chunk in update.Contents.OfType<DataContent>())
            {
                speech.Add(chunk, clock.Elapsed);
            }
        }

        Console.WriteLine();
        Console.WriteLine($"first audio after {speech.FirstAudio?.TotalSeconds:F2} s; {speech.SampleCount / 24000.0:F1} s of speech in {clock.Elapsed.TotalSeconds:F1} s");
        if (arguments.OutWav is { } path)
        {
            speech.Write(path);
            Console.WriteLine($"speech written to {path}");
        }
    });
}
