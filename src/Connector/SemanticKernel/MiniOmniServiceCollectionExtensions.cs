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

    /// <summary>How the chat client renders conversations.</summary>
    public MiniOmniChatClientOptions Chat { get; set; } = new();
}

/// <summary>Registers one shared Mini-Omni engine and its Microsoft.Extensions.AI and Semantic Kernel services.</summary>
public static class MiniOmniServiceCollectionExtensions
{
    /// <summary>
    /// Registers, for <paramref name="modelPath"/>: the engine (<see cref="IMiniOmniEngine"/>, loaded once on first use),
    /// an <see cref="IChatClient"/> that invokes functions (so <c>FunctionChoiceBehavior.Auto()</c> and agents work),
    /// <see cref="ISpeechToTextClient"/>, <see cref="ITextToSpeechClient"/>, and Semantic Kernel's
    /// <see cref="IChatCompletionService"/>, <see cref="IAudioToTextService"/> and <see cref="ITextToAudioService"/>.
    /// With <paramref name="serviceId"/>, the services are keyed by it.
    /// </summary>
    public static IServiceCollection AddMiniOmni(this IServiceCollection services, string modelPath, Action<MiniOmniOptions>? configure = null, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelPath);
        var options = new MiniOmniOptions { ModelPath = modelPath };
        configure?.Invoke(options);
        return services.AddMiniOmni(provider => LoadEngine(options, provider.GetService<ILoggerFactory>()), options.Chat, serviceId);
    }

    /// <summary>
    /// Registers the same services over the engine <paramref name="engineFactory"/> makes (once): for an engine the
    /// application loads itself, or another <see cref="IMiniOmniEngine"/>.
    /// </summary>
    public static IServiceCollection AddMiniOmni(this IServiceCollection services, Func<IServiceProvider, IMiniOmniEngine> engineFactory, MiniOmniChatClientOptions? chatOptions = null, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(engineFactory);
        services.AddKeyedSingleton<IMiniOmniEngine>(serviceId, (provider, _) => engineFactory(provider));
        services.AddKeyedSingleton<IChatClient>(serviceId, (provider, key) =>
            new ChatClientBuilder(new MiniOmniChatClient(provider.GetRequiredKeyedService<IMiniOmniEngine>(key), chatOptions, provider.GetService<ILogger<MiniOmniChatClient>>()))
                .UseFunctionInvocation(provider.GetService<ILoggerFactory>())
                .Build(provider));
        services.AddKeyedSingleton<ISpeechToTextClient>(serviceId, (provider, key) => new MiniOmniSpeechToTextClient(provider.GetRequiredKeyedService<IMiniOmniEngine>(key)));
        services.AddKeyedSingleton<ITextToSpeechClient>(serviceId, (provider, key) => new MiniOmniTextToSpeechClient(provider.GetRequiredKeyedService<IMiniOmniEngine>(key)));
        services.AddKeyedSingleton<IChatCompletionService>(serviceId, (provider, key) => provider.GetRequiredKeyedService<IChatClient>(key).AsChatCompletionService(provider));
        services.AddKeyedSingleton<IAudioToTextService>(serviceId, (provider, key) => new MiniOmniAudioToTextService(provider.GetRequiredKeyedService<ISpeechToTextClient>(key)));
        services.AddKeyedSingleton<ITextToAudioService>(serviceId, (provider, key) => new MiniOmniTextToAudioService(provider.GetRequiredKeyedService<ITextToSpeechClient>(key)));
        return services;
    }

    // A model name is fetched on first use: the engine is a singleton, so this runs once, when a service is first resolved.
    private static MiniOmniEngine LoadEngine(MiniOmniOptions options, ILoggerFactory? loggers)
    {
        options.Download.Logger ??= loggers?.CreateLogger("MiniOmni.SK.ModelStore");
        var directory = MiniOmni.SK.ModelFiles.Download.ModelStore.ResolveAsync(options.ModelPath, options.Download).GetAwaiter().GetResult();
        return MiniOmniEngine.Load(directory.Path, options.Engine, loggers);
    }

    /// <summary>Adds Mini-Omni's services to the kernel; see <see cref="AddMiniOmni(IServiceCollection, string, Action{MiniOmniOptions}?, string?)"/>.</summary>
    public static IKernelBuilder AddMiniOmni(this IKernelBuilder builder, string modelPath, Action<MiniOmniOptions>? configure = null, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddMiniOmni(modelPath, configure, serviceId);
        return builder;
    }
}
