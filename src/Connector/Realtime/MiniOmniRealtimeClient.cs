using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Realtime speech-to-speech sessions over a Mini-Omni engine: audio in as it is spoken, turns ended by the client or by
/// voice activity detection, answers streamed back as text and 24 kHz speech, barge-in. Tools are offered as the chat client
/// offers them: the model's call is an output item holding a <see cref="FunctionCallContent"/>, and an item holding a
/// <see cref="FunctionResultContent"/> continues the answer, so MEAI's <c>UseFunctionInvocation()</c> works over it.
/// Every session is independent; they share only the engine, which schedules their answers.
/// </summary>
/// <remarks>MEAI's realtime abstractions are experimental (MEAI001), and so is this client.</remarks>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class MiniOmniRealtimeClient : IRealtimeClient
{
    private readonly IMiniOmniEngine _engine;
    private readonly MiniOmniRealtimeClientOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ChatClientMetadata _metadata;

    /// <summary>Creates sessions over <paramref name="engine"/>, which the client uses but does not own.</summary>
    public MiniOmniRealtimeClient(IMiniOmniEngine engine, MiniOmniRealtimeClientOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        _options = (options ?? new MiniOmniRealtimeClientOptions()).Validate();
        _loggers = loggerFactory ?? NullLoggerFactory.Instance;
        _metadata = new ChatClientMetadata("miniomni", providerUri: null, defaultModelId: engine.ModelId);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The options ask for something Mini-Omni cannot do; the message names it.</exception>
    public Task<IRealtimeClientSession> CreateSessionAsync(RealtimeSessionOptions? options = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        RealtimeSessionSettings settings;
        try
        {
            settings = RealtimeSessionSettings.From(options ?? new RealtimeSessionOptions());
        }
        catch (RealtimeRequestException e)
        {
            throw new ArgumentException(e.Message, nameof(options), e);
        }

        IRealtimeClientSession session = new MiniOmniRealtimeSession(_engine, settings, _options, _metadata, _loggers.CreateLogger<MiniOmniRealtimeSession>());
        return Task.FromResult(session);
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _metadata, _engine, this);

    /// <summary>Does nothing: the engine belongs to the caller, and each session is disposed on its own.</summary>
    public void Dispose()
    {
    }
}

/// <summary>Realtime clients over a Mini-Omni engine.</summary>
public static class MiniOmniRealtimeClientExtensions
{
    /// <summary>A realtime client whose sessions talk with <paramref name="engine"/>.</summary>
    [Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
    public static IRealtimeClient AsIRealtimeClient(this IMiniOmniEngine engine, MiniOmniRealtimeClientOptions? options = null, ILoggerFactory? loggerFactory = null) =>
        new MiniOmniRealtimeClient(engine, options, loggerFactory);
}
