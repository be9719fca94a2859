using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.AudioToText;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.TextToAudio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>Where the model is and how it runs, for <c>AddMiniOmni</c>.</summary>
public sealed class MiniOmniOptions
{
    /// <summary>A MiniOmni.SK model directory (backbone.gguf, vocabulary.gguf and audio.gguf), or a model name such as <c>mini-omni</c>, fetched and converted into the cache on first use.</summary>
    public string ModelPath { get; set; } = "";

    /// <summary>Where and how a model named by <see cref="ModelPath"/> is downloaded (cache, hub endpoint, token, offline).</summary>
    public MiniOmni.SK.ModelFiles.Download.ModelStoreOptions Download { get; set; } = new();

    /// <summary>How the engine runs (threads, cache, concurrent answers).</summary>
    public MiniOmniEngineOptions Engine { get; set; } = new();

    /// <summary>How the chat client renders conversations and remembers spoken turns.</summary>
    public MiniOmniChatClientOptions Chat { get; set; } = new();

    /// <summary>How the realtime client's sessions run (voice activity detection, history, transcription).</summary>
    public MiniOmniRealtimeClientOptions Realtime { get; set; } = new();

    /// <summary>
    /// A thinker: the chat client (any model, an agent's) that writes the answers, resolved from the services. With one,
    /// the registered <see cref="IChatClient"/> is a <see cref="MiniOmniVoiceChatClient"/> around it (Mini-Omni hears the
    /// question and speaks the thinker's answer as it streams), Semantic Kernel's chat service and agents answer by voice
    /// through it, and realtime sessions speak its answers. Null (the default): Mini-Omni answers itself.
    /// </summary>
    public Func<IServiceProvider, IChatClient>? Thinker { get; set; }

    /// <summary>How Mini-Omni hears and speaks for the <see cref="Thinker"/>.</summary>
    public MiniOmniVoiceOptions Voice { get; set; } = new();
}

/// <summary>Registers one shared Mini-Omni engine and its Microsoft.Extensions.AI and Semantic Kernel services.</summary>
public static class MiniOmniServiceCollectionExtensions
{
    /// <summary>
    /// Registers, for <paramref name="modelPath"/> (a model directory, or a model name such as <c>mini-omni</c>): the engine
    /// (<see cref="IMiniOmniEngine"/>, a <see cref="LazyMiniOmniEngine"/>: nothing is downloaded or loaded until the first
    /// request, or its <see cref="LazyMiniOmniEngine.LoadAsync"/>, and no thread ever blocks on it), and over it the
    /// services of <see cref="AddMiniOmni(IServiceCollection, Func{IServiceProvider, IMiniOmniEngine}, MiniOmniChatClientOptions?, string?, MiniOmniRealtimeClientOptions?, Func{IServiceProvider, IChatClient}?, MiniOmniVoiceOptions?)"/>.
    /// With <paramref name="serviceId"/>, the services are keyed by it.
    /// </summary>
    public static IServiceCollection AddMiniOmni(this IServiceCollection services, string modelPath, Action<MiniOmniOptions>? configure = null, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelPath);
        var options = new MiniOmniOptions { ModelPath = modelPath };
        configure?.Invoke(options);
        return services.AddMiniOmni(provider => new LazyMiniOmniEngine(options, provider.GetService<ILoggerFactory>()), options.Chat, serviceId, options.Realtime, options.Thinker, options.Voice);
    }

    /// <summary>
    /// Registers the services over the engine <paramref name="engineFactory"/> makes (once): the plain
    /// <see cref="IChatClient"/> (<see cref="MiniOmniChatClient"/>, no pipeline: the application composes its own, and an
    /// Agent Framework agent adds function invocation itself), <see cref="ISpeechToTextClient"/>,
    /// <see cref="ITextToSpeechClient"/> (reads aloud), <see cref="IRealtimeClient"/>, and Semantic Kernel's
    /// <see cref="IChatCompletionService"/> over that chat client with Semantic Kernel's function invocation (so
    /// <c>FunctionChoiceBehavior.Auto()</c> invokes kernel functions, as Semantic Kernel's chat-client connectors do),
    /// <see cref="IAudioToTextService"/> and <see cref="ITextToAudioService"/>.
    /// With <paramref name="thinker"/>, the chat client is a <see cref="MiniOmniVoiceChatClient"/> around the chat client it
    /// makes (Mini-Omni hears the question, the thinker answers, Mini-Omni speaks its answer as it streams), so Semantic
    /// Kernel's chat service, a <c>ChatCompletionAgent</c> and an Agent Framework agent answer by voice with their plugins
    /// offered to the thinker; and realtime sessions speak the thinker's answers.
    /// </summary>
    public static IServiceCollection AddMiniOmni(
        this IServiceCollection services,
        Func<IServiceProvider, IMiniOmniEngine> engineFactory,
        MiniOmniChatClientOptions? chatOptions = null,
        string? serviceId = null,
        MiniOmniRealtimeClientOptions? realtimeOptions = null,
        Func<IServiceProvider, IChatClient>? thinker = null,
        MiniOmniVoiceOptions? voiceOptions = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(engineFactory);
        // One thinker client per service provider, for the chat client and the realtime sessions alike.
        var thinkers = new System.Runtime.CompilerServices.ConditionalWeakTable<IServiceProvider, IChatClient>();
        IChatClient ThinkerOf(IServiceProvider provider) => thinkers.GetValue(provider, p => thinker!(p));
        services.AddKeyedSingleton<IMiniOmniEngine>(serviceId, (provider, _) => engineFactory(provider));
        services.AddKeyedSingleton<IChatClient>(serviceId, (provider, key) => thinker is null
            ? new MiniOmniChatClient(provider.GetRequiredKeyedService<IMiniOmniEngine>(key), chatOptions, provider.GetService<ILogger<MiniOmniChatClient>>())
            : new MiniOmniVoiceChatClient(ThinkerOf(provider), provider.GetRequiredKeyedService<IMiniOmniEngine>(key), voiceOptions, provider.GetService<ILogger<MiniOmniVoiceChatClient>>()));
        services.AddKeyedSingleton<ISpeechToTextClient>(serviceId, (provider, key) => new MiniOmniSpeechToTextClient(provider.GetRequiredKeyedService<IMiniOmniEngine>(key)));
        services.AddKeyedSingleton<ITextToSpeechClient>(serviceId, (provider, key) => new MiniOmniTextToSpeechClient(provider.GetRequiredKeyedService<IMiniOmniEngine>(key)));
        services.AddKeyedSingleton<IRealtimeClient>(serviceId, (provider, key) =>
            new MiniOmniRealtimeClient(
                provider.GetRequiredKeyedService<IMiniOmniEngine>(key),
                thinker is null ? realtimeOptions : (realtimeOptions ?? new MiniOmniRealtimeClientOptions()) with { Thinker = ThinkerOf(provider) },
                provider.GetService<ILoggerFactory>()));

        services.AddKeyedSingleton<IChatCompletionService>(serviceId, (provider, key) =>
            provider.GetRequiredKeyedService<IChatClient>(key).AsBuilder()
                .UseKernelFunctionInvocation(provider.GetService<ILoggerFactory>())
                .Build(provider)
                .AsChatCompletionService(provider));
        services.AddKeyedSingleton<IAudioToTextService>(serviceId, (provider, key) => new MiniOmniAudioToTextService(provider.GetRequiredKeyedService<ISpeechToTextClient>(key)));
        services.AddKeyedSingleton<ITextToAudioService>(serviceId, (provider, key) => new MiniOmniTextToAudioService(provider.GetRequiredKeyedService<ITextToSpeechClient>(key)));
        return services;
    }

    /// <summary>Adds Mini-Omni's services to the kernel; see <see cref="AddMiniOmni(IServiceCollection, string, Action{MiniOmniOptions}?, string?)"/>.</summary>
    public static IKernelBuilder AddMiniOmni(this IKernelBuilder builder, string modelPath, Action<MiniOmniOptions>? configure = null, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddMiniOmni(modelPath, configure, serviceId);
        return builder;
    }
}
