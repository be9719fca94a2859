using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Samples.AgentFramework;

/// <summary>The voice agent as a Microsoft Agent Framework <see cref="ChatClientAgent"/> over Mini-Omni's chat client.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => SampleCommand.RunAsync("A Microsoft Agent Framework voice agent over Mini-Omni.", args, async (arguments, cancellation) =>
    {
        using var engine = MiniOmniEngine.Load(arguments.Model, loggers: arguments.Loggers);
        var units = new UnitsPlugin();
        var time = new TimePlugin(TimeProvider.System);
        var agent = new ChatClientAgent(
            engine.AsIChatClient(),
            instructions: "You are a helpful voice assistant. Use the tools for the time and for unit conversions.",
            tools: [AIFunctionFactory.Create(units.MilesToKilometres), AIFunctionFactory.Create(units.FahrenheitToCelsius), AIFunctionFactory.Create(time.UtcNow)]);

        var response = await agent.RunAsync([arguments.Question()], options: new ChatClientAgentRunOptions(new ChatOptions { MaxOutputTokens = arguments.MaxTokens }.WithMiniOmniOutput(MiniOmniOutput.TextAndSpeech)), cancellationToken: cancellation);

        Console.WriteLine(response.Text);
        var wav = response.Messages.SelectMany(m => m.Contents).OfType<DataContent>().LastOrDefault(d => d.MediaType == MiniOmniMediaTypes.Wav);
        if (arguments.OutWav is { } path && wav is not null)
        {
            await File.WriteAllBytesAsync(path, wav.Data.ToArray(), cancellation);
            Console.WriteLine($"speech written to {path}");
        }
    });
}
