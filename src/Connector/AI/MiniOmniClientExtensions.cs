using System.Globalization;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK;

/// <summary>Microsoft.Extensions.AI clients over a Mini-Omni engine.</summary>
public static class MiniOmniClientExtensions
{
    /// <summary>The provider name MiniOmni.SK's clients report in their metadata.</summary>
    public const string ProviderName = "miniomni";

    /// <summary>A chat client (text and speech in and out, tools) over <paramref name="engine"/>.</summary>
    public static IChatClient AsIChatClient(this IMiniOmniEngine engine, MiniOmniChatClientOptions? options = null) => new MiniOmniChatClient(engine, options);

    /// <summary>A speech-to-text client (the ASR task) over <paramref name="engine"/>.</summary>
    public static ISpeechToTextClient AsISpeechToTextClient(this IMiniOmniEngine engine) => new MiniOmniSpeechToTextClient(engine);

    /// <summary>A text-to-speech client (T1A2: the spoken answer to the text) over <paramref name="engine"/>.</summary>
    public static ITextToSpeechClient AsITextToSpeechClient(this IMiniOmniEngine engine) => new MiniOmniTextToSpeechClient(engine);

    // What every client's GetService answers: its metadata, the engine, or itself.
    internal static object? GetService(Type serviceType, object? serviceKey, object metadata, IMiniOmniEngine engine, object client)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType.IsInstanceOfType(metadata) ? metadata
            : serviceType.IsInstanceOfType(engine) ? engine
            : serviceType.IsInstanceOfType(client) ? client
            : null;
    }

    // An answer's usage: prompt positions in, steps out.
    internal static UsageDetails Usage(AnswerCompleted completed) =>
        new() { InputTokenCount = completed.PromptTokens, OutputTokenCount = completed.Steps, TotalTokenCount = completed.PromptTokens + completed.Steps };

    // The encoder mode from options' additional properties (the chat option's key), exact by default.
    internal static EncoderMode EncoderMode(AdditionalPropertiesDictionary? properties) =>
        MiniOmniChatOptions.Encoder(properties is null ? null : new ChatOptions { AdditionalProperties = properties });
}
