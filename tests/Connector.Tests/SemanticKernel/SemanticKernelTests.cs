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
        Assert.True(Assert.IsType<LazyMiniOmniEngine>(kernel.Services.GetRequiredService<IMiniOmniEngine>()).IsLoaded);
    }

    [Fact]
    public async Task ResolvingTheServicesNeverLoadsTheModelAndTheFirstRequestSaysWhatFailed()
    {
        using var cache = Fixture.CreateTemporaryDirectory();
        var services = new ServiceCollection();
        services.AddMiniOmni("mini-omni", options =>
        {
            options.Download.CacheDirectory = cache.Path;
            options.Download.Offline = true;
        });
        using var provider = services.BuildServiceProvider();

        var engine = Assert.IsType<LazyMiniOmniEngine>(provider.GetRequiredService<IMiniOmniEngine>());
        var chat = provider.GetRequiredService<IChatClient>();
        provider.GetRequiredService<ITextToSpeechClient>();
        provider.GetRequiredService<IRealtimeClient>();
        provider.GetRequiredService<IChatCompletionService>();

        Assert.False(engine.IsLoaded);
        Assert.Equal("mini-omni", engine.ModelId);
        Assert.Equal("mini-omni", chat.GetService<ChatClientMetadata>()?.DefaultModelId);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => engine.LoadAsync(new CancellationToken(canceled: true)));
        await Assert.ThrowsAsync<MiniOmni.SK.ModelFiles.ModelFileException>(() => chat.GetResponseAsync("Hi"));
        Assert.False(engine.IsLoaded);
    }

    [Fact]
    public void AddMiniOmniRegistersThePlainChatClientAndARealtimeClient()
    {
        var engine = new ScriptedEngine(Completed());
        var services = new ServiceCollection();
        services.AddMiniOmni(_ => engine.Object);
        using var provider = services.BuildServiceProvider();

        var chat = provider.GetRequiredService<IChatClient>();

        Assert.IsType<MiniOmniChatClient>(chat);
        Assert.Null(chat.GetService<FunctionInvokingChatClient>());
        Assert.IsType<MiniOmniRealtimeClient>(provider.GetRequiredService<IRealtimeClient>());
        Assert.Same(engine.Object, provider.GetRequiredService<IRealtimeClient>().GetService<IMiniOmniEngine>());
        Assert.IsType<MiniOmniTextToSpeechClient>(provider.GetRequiredService<ITextToSpeechClient>());
    }

    [Fact]
    public void SettingsOfAnotherKindConvertByTheirJsonNamesAndKeepTheirFunctionChoice()
    {
        var behavior = FunctionChoiceBehavior.Auto();
        var settings = new PromptExecutionSettings
        {
            ModelId = "m",
            FunctionChoiceBehavior = behavior,
            ExtensionData = new Dictionary<string, object> { ["temperature"] = "0.5", ["max_tokens"] = 12, ["miniomni_speech_mode"] = "Answer", ["miniomni_encoder_mode"] = "fast" },
        };

        var converted = MiniOmniPromptExecutionSettings.FromExecutionSettings(settings);

        Assert.Equal((0.5f, 12, MiniOmniSpeechMode.Answer, true, "m"), (converted.Temperature, converted.MaxTokens, converted.SpeechMode, converted.FastEncoder, converted.ModelId));
        Assert.Same(behavior, converted.FunctionChoiceBehavior);
        var own = new MiniOmniPromptExecutionSettings();
        Assert.Same(own, MiniOmniPromptExecutionSettings.FromExecutionSettings(own));
    }

    [Fact]
    public async Task TheAudioServicesHonourTheirExecutionSettings()
    {
        var engine = new ScriptedEngine(SpeechOf(0.1f), Completed());
        var kernel = KernelOver(engine);

        await kernel.GetRequiredService<ITextToAudioService>().GetAudioContentsAsync("Hello.");
        await kernel.GetRequiredService<ITextToAudioService>().GetAudioContentsAsync(
            "Hello.", new MiniOmniPromptExecutionSettings { SpeechMode = MiniOmniSpeechMode.Answer, MaxTokens = 30, Temperature = 0.5f, Seed = 2 });
        await kernel.GetRequiredService<IAudioToTextService>().GetTextContentsAsync(
            new AudioContent(File.ReadAllBytes(Fixture.Question), "audio/wav"), new MiniOmniPromptExecutionSettings { MaxTokens = 20, FastEncoder = true });

        Assert.Equal(MiniOmniTask.ReadAloud, engine.Requests[0].Task);
        Assert.Equal((MiniOmniTask.T1A2, 30), (engine.Requests[1].Task, engine.Requests[1].MaxTokens));
        Assert.Equal(new SamplingOptions { Temperature = 0.5f, Seed = 2 }, engine.Requests[1].Sampling);
        Assert.Equal((MiniOmniTask.Asr, 20, MiniOmni.SK.Speech.EncoderMode.Fast), (engine.Requests[2].Task, engine.Requests[2].MaxTokens, engine.Requests[2].EncoderMode));
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
        var engine = new ScriptedEngine(request => PreambleOf(request)!.Contains("<tool_response>", StringComparison.Ordinal)
            ? [new TextDelta("It is 5 km."), Completed()]
            : [new TextDelta("<tool_call>{\"name\": \"Units_MilesToKilometres\", \"arguments\": {\"miles\": 3.1}}</tool_call>"), Completed()]);
        var kernel = KernelOver(engine);
        kernel.Plugins.AddFromType<UnitsPlugin>("Units");

        var history = new ChatHistory();
        history.AddUserMessage("How far is 3.1 miles?");
        var answer = await kernel.GetRequiredService<IChatCompletionService>().GetChatMessageContentAsync(
            history, new MiniOmniPromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto() }, kernel);

        Assert.Equal("It is 5 km.", answer.Content);
        Assert.Contains("Units_MilesToKilometres", PreambleOf(engine.Requests[0]));
        Assert.Contains("<tool_response>\n4.989\n</tool_response>", PreambleOf(engine.Requests[1]));
    }

    [Fact]
    public async Task AnAgentFrameworkAgentRunsOverTheChatClient()
    {
        var engine = new ScriptedEngine(request => PreambleOf(request)!.Contains("<tool_response>", StringComparison.Ordinal)
            ? [new TextDelta("Done."), Completed()]
            : [new TextDelta("<tool_call>{\"name\": \"MilesToKilometres\", \"arguments\": {\"miles\": 1}}</tool_call>"), Completed()]);
        var agent = new ChatClientAgent(new MiniOmniChatClient(engine.Object), instructions: "You convert units.", tools: [AIFunctionFactory.Create(new UnitsPlugin().MilesToKilometres)]);

        var response = await agent.RunAsync("How far is a mile?");

        Assert.Equal("Done.", response.Text);
        Assert.Contains("You convert units.", PreambleOf(engine.Requests[0]));
        Assert.Contains("<tool_response>\n1.609\n</tool_response>", PreambleOf(engine.Requests[1]));
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
