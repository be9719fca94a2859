using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>How a <see cref="MiniOmniChatClient"/> turns conversations into Mini-Omni requests.</summary>
public sealed record MiniOmniChatClientOptions
{
    /// <summary>How instructions, tools and earlier turns are written ahead of the question. Default: Qwen2's ChatML.</summary>
    public IConversationRenderer ConversationRenderer { get; init; } = ChatMLConversationRenderer.Instance;
}

/// <summary>
/// Mini-Omni as an <see cref="IChatClient"/>: questions as text or speech (WAV or MP3 <see cref="DataContent"/>, or a
/// local file's <see cref="UriContent"/>), answers as text and, when asked (by default for spoken questions), speech.
/// Streaming updates carry text and 24 kHz PCM16 speech chunks (<see cref="MiniOmniMediaTypes.SpeechChunk"/>) as they are
/// produced; the whole response carries the text and one WAV. Tools are offered in Qwen2's format and the model's
/// <c>&lt;tool_call&gt;</c> answers come back as <see cref="FunctionCallContent"/>; a turn that calls a tool speaks nothing.
/// </summary>
public sealed class MiniOmniChatClient : IChatClient
{
    private readonly IMiniOmniEngine _engine;
    private readonly MiniOmniChatClientOptions _options;
    private readonly ChatClientMetadata _metadata;
    private readonly ILogger _logger;

    /// <summary>A chat client over <paramref name="engine"/>, which it does not own.</summary>
    public MiniOmniChatClient(IMiniOmniEngine engine, MiniOmniChatClientOptions? options = null, ILogger<MiniOmniChatClient>? logger = null)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _options = options ?? new MiniOmniChatClientOptions();
        _metadata = new ChatClientMetadata(MiniOmniClientExtensions.ProviderName, providerUri: null, engine.ModelId);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        var speech = new List<float>();
        var contents = new List<AIContent>();
        var response = new ChatResponse { ModelId = _engine.ModelId };
        await foreach (var (update, samples) in AnswerAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            response.ResponseId ??= update.ResponseId;
            response.FinishReason = update.FinishReason ?? response.FinishReason;
            speech.AddRange(samples ?? []);
            foreach (var content in update.Contents)
            {
                switch (content)
                {
                    case TextContent part:
                        text.Append(part.Text);
                        break;
                    case UsageContent usage:
                        response.Usage = usage.Details;
                        break;
                    case DataContent:
                        break;
                    default:
                        contents.Add(content);
                        break;
                }
            }
        }

        var message = new ChatMessage(ChatRole.Assistant, [])
        {
            MessageId = response.ResponseId,
        };
        if (text.Length > 0)
        {
            message.Contents.Add(new TextContent(text.ToString()));
        }

        if (speech.Count > 0)
        {
            message.Contents.Add(new DataContent(MiniOmniMediaTypes.EncodeWav(speech.ToArray()), MiniOmniMediaTypes.Wav) { Name = "answer.wav" });
        }

        foreach (var content in contents)
        {
            message.Contents.Add(content);
        }

        response.Messages.Add(message);
        return response;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var (update, _) in AnswerAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _metadata, _engine, this);

    /// <summary>Nothing to release: the engine belongs to whoever created it.</summary>
    public void Dispose()
    {
    }

    // The engine checks the request on the first move; a conversation too long for the context is named as such.
    private static async Task<bool> StartAsync(IAsyncEnumerator<MiniOmniEvent> events, ChatTurn turn)
    {
        try
        {
            return await events.MoveNextAsync().ConfigureAwait(false);
        }
        catch (ContextOverflowException e) when (turn.Request.Preamble is { Length: > 0 } preamble)
        {
            throw new ContextOverflowException(
                $"The conversation is too long for Mini-Omni's context: the instructions, tools and earlier turns ({preamble.Length} characters) with the question " +
                $"take {e.PromptPositions} positions, and {e.Steps} more are needed for the answer. Shorten the history or lower MaxOutputTokens. ({e.Message})",
                e.PromptPositions, e.Steps, e);
        }
    }

    // The answer as updates, each with the speech samples it carries (so the whole response can build one WAV).
    private async IAsyncEnumerable<(ChatResponseUpdate Update, float[]? Speech)> AnswerAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var turn = ChatTurn.From(messages, options, _options.ConversationRenderer);
        string responseId = $"miniomni-{Guid.NewGuid():N}";
        var parser = new ToolCallParser();
        var stops = new StopSequenceFilter(turn.StopSequences);
        var heldSpeech = new List<float[]>();
        ChatFinishReason? finish = null;
        using var answer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        ChatResponseUpdate Update(params AIContent[] contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId,
            MessageId = responseId,
            ModelId = _engine.ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
        };

        IEnumerable<(ChatResponseUpdate, float[]?)> Release(IReadOnlyList<AIContent> parsed)
        {
            foreach (var content in parsed)
            {
                if (content is TextContent text)
                {
                    var (visible, stopped) = stops.Append(text.Text);
                    if (visible.Length > 0)
                    {
                        yield return (Update(new TextContent(visible)), null);
                    }

                    if (stopped)
                    {
                        finish = ChatFinishReason.Stop;
                        yield break;
                    }
                }
                else
                {
                    if (content is FunctionCallContent)
                    {
                        finish = ChatFinishReason.ToolCalls;
                    }

                    yield return (Update(content), null);
                }
            }
        }

        _logger.LogDebug("Answering with {Task} ({Speech}).", turn.Request.Task, turn.Speaks ? "speech" : "text only");
        await using var events = _engine.GenerateAsync(turn.Request, answer.Token).GetAsyncEnumerator(answer.Token);
        for (bool more = await StartAsync(events, turn).ConfigureAwait(false); finish is null && more; more = await events.MoveNextAsync().ConfigureAwait(false))
        {
            switch (events.Current)
            {
                case TextDelta delta:
                    foreach (var item in Release(parser.Append(delta.Text)))
                    {
                        yield return item;
                    }

                    // Held speech goes out, in order, as soon as the answer can no longer be a tool call.
                    if (!parser.MayStillBeToolCall && !parser.SawToolCall)
                    {
                        foreach (var chunk in heldSpeech)
                        {
                            yield return Speech(chunk);
                        }

                        heldSpeech.Clear();
                    }

                    break;
                case SpeechChunk speech when turn.Speaks && !parser.SawToolCall:
                    if (turn.ToolsOffered && parser.MayStillBeToolCall)
                    {
                        heldSpeech.Add(speech.Samples);
                    }
                    else
                    {
                        yield return Speech(speech.Samples);
                    }

                    break;
                case AnswerCompleted completed:
                    foreach (var item in Release(parser.Complete()))
                    {
                        yield return item;
                    }

                    foreach (var item in Release([.. stops.Complete().Select(t => (AIContent)new TextContent(t))]))
                    {
                        yield return item;
                    }

                    if (!parser.SawToolCall)
                    {
                        foreach (var chunk in heldSpeech)
                        {
                            yield return Speech(chunk);
                        }
                    }

                    finish ??= turn.Request.MaxTokens > 0 && completed.Steps >= turn.Request.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop;
                    var usage = MiniOmniClientExtensions.Usage(completed);
                    var last = Update(new UsageContent(usage));
                    last.FinishReason = finish;
                    yield return (last, null);
                    yield break;
            }
        }

        // Stopped early (a stop sequence or a tool call): the engine's answer is cancelled and leaves its batch.
        await answer.CancelAsync().ConfigureAwait(false);
        var end = Update();
        end.FinishReason = finish;
        yield return (end, null);

        (ChatResponseUpdate, float[]?) Speech(float[] samples) =>
            (Update(new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(samples), MiniOmniMediaTypes.SpeechChunk)), samples);
    }
}
