using System.Runtime.CompilerServices;
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

    /// <summary>
    /// Spoken memory: earlier user turns that are only audio are transcribed (the ASR task, once per audio: see
    /// <see cref="TranscriptCacheEntries"/>) and written as their words, so a voice chat remembers what was asked. Off, they
    /// are written <c>[spoken]</c>. On by default.
    /// </summary>
    public bool TranscribeSpokenTurns { get; init; } = true;

    /// <summary>The most transcripts of spoken turns kept, by content hash, least recently used out first.</summary>
    public int TranscriptCacheEntries { get; init; } = 256;

    /// <summary>The most bytes of transcripts (UTF-16, with their keys) kept.</summary>
    public long TranscriptCacheBytes { get; init; } = 1 << 20;

    /// <summary>The longest transcript of one spoken turn, in steps (tokens).</summary>
    public int TranscriptMaxTokens { get; init; } = 256;
}

/// <summary>
/// Mini-Omni as an <see cref="IChatClient"/>: questions as text or speech (WAV, MP3, or Opus in Ogg or WebM <see cref="DataContent"/>, or a
/// local file's <see cref="UriContent"/>), answers as text and, when asked (by default for spoken questions), speech.
/// Streaming updates carry text and 24 kHz PCM16 speech chunks (<see cref="MiniOmniMediaTypes.SpeechChunk"/>) as they are
/// produced, each with the engine's event as its <see cref="ChatResponseUpdate.RawRepresentation"/>; the whole response
/// carries the text, one WAV and the usage. Tools are offered in Qwen2's format and the model's <c>&lt;tool_call&gt;</c>
/// answers come back as <see cref="FunctionCallContent"/>; a turn that calls a tool speaks nothing.
/// </summary>
/// <remarks>
/// <see cref="ChatOptions"/> honoured: <c>Instructions</c>, <c>Temperature</c>, <c>TopP</c>, <c>TopK</c>, <c>Seed</c>,
/// <c>MaxOutputTokens</c>, <c>StopSequences</c>, <c>ResponseFormat</c> (JSON, with or without a schema, is asked for in the
/// instructions: the model has no constrained decoding, so an answer is not guaranteed to parse), <c>Tools</c>, <c>ToolMode</c> (see <see cref="ChatTurn"/>: None offers no
/// tools, a required mode makes the answer open a tool call) and MiniOmni.SK's own (<see cref="MiniOmniChatOptions"/>).
/// Ignored, as a local single-model client: <c>ModelId</c>, <c>ConversationId</c>, <c>FrequencyPenalty</c>,
/// <c>PresencePenalty</c>, <c>AllowMultipleToolCalls</c> and other
/// additional properties. Greedy decoding (temperature 0) is the default, as the release decodes. Finish reasons:
/// <see cref="ChatFinishReason.Stop"/> when the model ends its answer or a stop sequence does,
/// <see cref="ChatFinishReason.Length"/> when <c>MaxOutputTokens</c> or the model's context cuts it off,
/// <see cref="ChatFinishReason.ToolCalls"/> when it calls a tool.
/// </remarks>
public sealed class MiniOmniChatClient : IChatClient
{
    private readonly IMiniOmniEngine _engine;
    private readonly MiniOmniChatClientOptions _options;
    private readonly ChatClientMetadata _metadata;
    private readonly SpokenMemory? _spokenMemory;
    private readonly ILogger _logger;

    /// <summary>A chat client over <paramref name="engine"/>, which it does not own.</summary>
    public MiniOmniChatClient(IMiniOmniEngine engine, MiniOmniChatClientOptions? options = null, ILogger<MiniOmniChatClient>? logger = null)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _options = options ?? new MiniOmniChatClientOptions();
        _metadata = new ChatClientMetadata(MiniOmniClientExtensions.ProviderName, providerUri: null, engine.ModelId);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _spokenMemory = _options.TranscribeSpokenTurns
            ? new SpokenMemory(engine, new TranscriptCache(_options.TranscriptCacheEntries, _options.TranscriptCacheBytes), _options.TranscriptMaxTokens, _logger)
            : null;
    }

    /// <summary>Spoken turns transcribed so far (not those found in the cache), for tests and diagnostics.</summary>
    internal long SpokenTurnsTranscribed => _spokenMemory?.Transcriptions ?? 0;

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var response = new SpokenResponseBuilder(new ChatResponse { ModelId = _engine.ModelId });
        await foreach (var (update, samples) in AnswerAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            response.Add(update, samples);
        }

        return response.Build();
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
        catch (ContextOverflowException e) when (turn.Request.PreambleSegments is { Count: > 0 } preamble)
        {
            int characters = preamble.Sum(segment => segment.Value.Length);
            string answer = e.Steps > 0 ? $"and the answer needs {e.Steps} more" : "which leaves no room for an answer";
            throw new ContextOverflowException(
                $"The conversation is too long for Mini-Omni's context: the instructions, tools and earlier turns ({characters} characters) with the question " +
                $"take {e.PromptPositions} positions, {answer}. Shorten the history or lower MaxOutputTokens. ({e.Message})",
                e.PromptPositions, e.Steps, e);
        }
    }

    // The answer as updates, each with the speech samples it carries (so the whole response can build one WAV).
    private async IAsyncEnumerable<(ChatResponseUpdate Update, float[]? Speech)> AnswerAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        IReadOnlyList<ChatMessage> conversation = [.. messages];
        if (_spokenMemory is not null)
        {
            conversation = await _spokenMemory.RecallAsync(conversation, MiniOmniChatOptions.Encoder(options), cancellationToken).ConfigureAwait(false);
        }

        var turn = ChatTurn.From(conversation, options, _options.ConversationRenderer);
        string responseId = $"miniomni-{Guid.NewGuid():N}";
        var parser = new ToolCallParser();
        var stops = new StopSequenceFilter(turn.StopSequences);
        var heldSpeech = new List<SpeechChunk>();
        ChatFinishReason? finish = null;
        MiniOmniEvent? current = null;
        using var answer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // Each update carries the engine event it came from.
        ChatResponseUpdate Update(params AIContent[] contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId,
            MessageId = responseId,
            ModelId = _engine.ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            RawRepresentation = current,
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
            current = events.Current;
            switch (current)
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
                        heldSpeech.Add(speech);
                    }
                    else
                    {
                        yield return Speech(speech);
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

                    finish ??= completed.StopReason == AnswerStopReason.EndOfAnswer ? ChatFinishReason.Stop : ChatFinishReason.Length;
                    // With OpenAI's details (audio and text tokens in and out), as realtime answers report them.
                    var usage = RealtimeUsage.From(completed, turn.Speaks);
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

        (ChatResponseUpdate, float[]?) Speech(SpeechChunk chunk)
        {
            var update = Update(new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(chunk.Samples), MiniOmniMediaTypes.SpeechChunk));
            update.RawRepresentation = chunk;
            return (update, chunk.Samples);
        }
    }
}
