using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Samples.Transcribe;

/// <summary>Speech to text: a WAV or MP3 in, its transcript streamed out.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => SampleCommand.RunAsync("Transcribe a WAV or MP3 file with Mini-Omni.", args, async (arguments, cancellation) =>
    {
        if (arguments.Input is null)
        {
            throw new ArgumentException("Transcribe needs --input WAV.");
        }

        using var engine = MiniOmniEngine.Load(arguments.Model, loggers: arguments.Loggers);
        using ISpeechToTextClient speechToText = engine.AsISpeechToTextClient();
        await using var audio = File.OpenRead(arguments.Input);
        await foreach (var update in speechToText.GetStreamingTextAsync(audio, cancellationToken: cancellation))
        {
            Console.Write(update.Text);
        }

        Console.WriteLine();
    });
}
