using System.ComponentModel;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.AudioToText;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.TextToAudio;
using MiniOmni.SK.Connector.Tests.AI;
using MiniOmni.SK.Engine;
using static MiniOmni.SK.Connector.Tests.AI.ScriptedEngine;

namespace MiniOmni.SK.Connector.Tests.SemanticKernel;

/// <summary>AddMiniOmni, Semantic Kernel's services and function calling, and an Agent Framework agent over the chat client.</summary>
public sealed class SemanticKernelTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>
{
    [Fact]
    public async Task AddMiniOmniRegistersOneEngineBehindEveryService()
    {
        var builder = Kernel.CreateBuilder();
        builder.AddMiniOmni(converted.Model.Path, options => options.Engine = new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2 });
        var kernel = builder.Build();

        var chat = kernel.GetRequiredService<IChatCompletionService>();
        var answer = await chat.GetChatMessageContentAsync("What is your name?", new MiniOmniPromptExecutionSettings { MaxTokens = 8 });
        var audio = await kernel.GetRequiredService<ITextToAudioService>().GetAudioContentAsync("What is your name?");
        var transcript = await kernel.GetRequiredService<IAudioToTextService>().GetTextContentAsync(new AudioContent(File.ReadAllBytes(Fixture.Question), "audio/wav"));

        Assert.Equal(8, (answer.Metadata?["Usage"] as UsageDetails)?.OutputTokenCount ?? 8);
        Assert.NotNull(answer.Content);
        Assert.Equal("audio/wav", audio.MimeType);
        Assert.True(audio.Data?.Length > 44);
        Assert.NotNull(transcript.Text);
        Assert.Same(kernel.Services.GetRequiredService<IMiniOmniEngine>(), kernel.Services.GetRequiredService<IChatClient>().GetService<IMiniOmniEngine>());
        Assert.Same(kernel.Services.GetRequiredService<IMiniOmniEngine>(), kernel.Services.GetRequiredService<ISpeechToTextClient>().GetService<IMiniOmniEngine>());
    }

    [Fact]
    public async Task ExecutionSettingsReachTheEngine()
    {
        var engine = new ScriptedEngine(new TextDelta("ok"), Completed());
        var kernel = KernelOver(engine);

        await kernel.GetRequiredService<IChatCompletionService>().GetChatMessageContentAsync(
            "Hi", new MiniOmniPromptExecutionSettings { Temperature = 0.5f, TopK = 7, MaxTokens = 12, Seed = 3, Output = MiniOmniOutput.TextAndSpeech, FastEncoder = true });

        Assert.Equal(MiniOmniTask.T1A2, engine.Request.Task);
        Assert.Equal(12, engine.Request.MaxTokens);
        Assert.Equal(new SamplingOptions { Temperature = 0.5f, TopK = 7, Seed = 3 }, engine.Request.Sampling);
        Assert.Equal(MiniOmni.SK.Speech.EncoderMode.Fast, engine.Request.EncoderMode);
    }

    [Fact]
    public async Task AutoFunctionChoiceInvokesAKernelPlugin()
    {
        var engine = new ScriptedEngine(request => request.Preamble!.Contains("<tool_response>", StringComparison.Ordinal)
            ? [new TextDelta("It is 5 km."), Completed()]
            : [new TextDelta("<tool_call>{\"name\": \"Units_MilesToKilometres\", \"arguments\": {\"miles\": 3.1}}</tool_call>"), Completed()]);
        var kernel = KernelOver(engine);
        kernel.Plugins.AddFromType<UnitsPlugin>("Units");

        var history = new ChatHistory();
        history.AddUserMessage("How far is 3.1 miles?");
        var answer = await kernel.GetRequiredService<IChatCompletionService>().GetChatMessageContentAsync(
            history, new MiniOmniPromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto() }, kernel);

        Assert.Equal("It is 5 km.", answer.Content);
        Assert.Contains("Units_MilesToKilometres", engine.Requests[0].Preamble);
        Assert.Contains("<tool_response>\n4.989\n</tool_response>", engine.Requests[1].Preamble);
    }

    [Fact]
    public async Task AnAgentFrameworkAgentRunsOverTheChatClient()
    {
        var engine = new ScriptedEngine(request => request.Preamble!.Contains("<tool_response>", StringComparison.Ordinal)
            ? [new TextDelta("Done."), Completed()]
            : [new TextDelta("<tool_call>{\"name\": \"MilesToKilometres\", \"arguments\": {\"miles\": 1}}</tool_call>"), Completed()]);
        var agent = new ChatClientAgent(new MiniOmniChatClient(engine.Object), instructions: "You convert units.", tools: [AIFunctionFactory.Create(new UnitsPlugin().MilesToKilometres)]);

        var response = await agent.RunAsync("How far is a mile?");

        Assert.Equal("Done.", response.Text);
        Assert.Contains("You convert units.", engine.Requests[0].Preamble);
        Assert.Contains("<tool_response>\n1.609\n</tool_response>", engine.Requests[1].Preamble);
    }

    private static Kernel KernelOver(ScriptedEngine engine)
    {
        var builder = Kernel.CreateBuilder();
        builder.Services.AddMiniOmni(_ => engine.Object);
        return builder.Build();
    }

    public sealed class UnitsPlugin
    {
        [KernelFunction, Description("Converts miles to kilometres.")]
        public double MilesToKilometres([Description("distance in miles")] double miles) => Math.Round(miles * 1.609344, 3);
    }
}
