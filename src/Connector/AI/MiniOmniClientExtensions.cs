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

    /// <summary>A text-to-speech client over <paramref name="engine"/>: it reads the text aloud (or, asked, speaks its answer to it).</summary>
    public static ITextToSpeechClient AsITextToSpeechClient(this IMiniOmniEngine engine) => new MiniOmniTextToSpeechClient(engine);

    // What every client's GetService answers, as MEAI's own providers do: nothing for a key; its metadata by exact type; the
    // engine only when asked for the engine's type (never as IDisposable or object: the client does not own it); itself.
    internal static object? GetService(Type serviceType, object? serviceKey, object metadata, IMiniOmniEngine engine, object client)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == metadata.GetType() ? metadata
            : serviceType == typeof(IMiniOmniEngine) || serviceType == engine.GetType() ? engine
            : serviceType.IsInstanceOfType(client) ? client
            : null;
    }

    // An answer's usage: prompt positions in, steps out.
    internal static UsageDetails Usage(AnswerCompleted completed) =>
        new() { InputTokenCount = completed.PromptTokens, OutputTokenCount = completed.Steps, TotalTokenCount = completed.PromptTokens + completed.Steps };
}
