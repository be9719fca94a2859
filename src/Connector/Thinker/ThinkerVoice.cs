using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// One turn of "any model thinks, Mini-Omni speaks": the thinker's streamed answer is read aloud by Mini-Omni while it
/// streams (<see cref="MiniOmniRequest.AnswerText"/>), and what the thinker says besides text is passed on as
/// <see cref="ThinkerUpdate"/> events. Stopping the turn (cancellation, barge-in) cancels the thinker's request; a thinker
/// that fails ends the turn with a <see cref="MiniOmniThinkerException"/> naming its endpoint and status. Shared by the
/// voice chat middleware and the realtime sessions; stateless, so one serves every turn.
/// </summary>
internal sealed class ThinkerVoice(IChatClient thinker, IMiniOmniEngine voice, ILogger logger)
{
    /// <summary>The chat client that writes the answers.</summary>
    public IChatClient Thinker => thinker;

    /// <summary>
    /// Answers <paramref name="messages"/> (the conversation for the thinker, its question as text): the thinker's text,
    /// spoken as it streams when <paramref name="speaks"/> (<see cref="TextDelta"/> as each piece is spoken, then
    /// <see cref="SpeechChunk"/>s), or as it comes otherwise; its other output as <see cref="ThinkerUpdate"/>; then one
    /// <see cref="AnswerCompleted"/>.
    /// </summary>
    /// <param name="messages">The conversation as the thinker gets it.</param>
    /// <param name="question">The question as words, the voice's prompt (the voice answers it in the thinker's words).</param>
    /// <param name="options">The thinker's options (tools included), as given.</param>
    /// <param name="speaks">Whether the answer is spoken; otherwise the thinker's text passes on as it comes.</param>
    /// <param name="voiceRequest">The voice's sampling, budget and encoder; its task and texts are set here.</param>
    /// <param name="cancellationToken">Stops the turn, the thinker's request with it.</param>
    public async IAsyncEnumerable<MiniOmniEvent> AnswerAsync(
        IReadOnlyList<ChatMessage> messages, string question, ChatOptions? options, bool speaks, MiniOmniRequest voiceRequest, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var thinking = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var text = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var others = new ConcurrentQueue<ChatResponseUpdate>();
        var failure = new StrongBox<Exception?>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var pump = Task.Run(() => ThinkAsync(messages, options, text.Writer, others, failure, thinking.Token), CancellationToken.None);
        try
        {
            if (!speaks)
            {
                int pieces = 0;
                await foreach (string piece in ReadText(text.Reader, failure, thinking.Token).ConfigureAwait(false))
                {
                    while (others.TryDequeue(out var other))
                    {
                        yield return new ThinkerUpdate(other);
                    }

                    pieces++;
                    yield return new TextDelta(piece);
                }

                yield return new AnswerCompleted(0, pieces, 0, null, clock.Elapsed, []);
            }
            else
            {
                // The voice's prompt is the question (a spoken question never heard as words still has one), its answer the thinker's text.
                // A thinker's answer longer than one voice answer's budget (the engine's default, when the caller set none) goes on
                // as a further voice answer from the first word not yet spoken, so that the whole text is heard.
                string carried = "";
                AnswerCompleted? whole = null;
                while (true)
                {
                    var read = new StringBuilder();
                    var spoken = new StringBuilder();
                    AnswerCompleted? completed = null;
                    var request = voiceRequest with
                    {
                        Task = MiniOmniTask.ReadAloud,
                        Text = string.IsNullOrWhiteSpace(question) ? RealtimeConversation.UntranscribedSpeech : question,
                        Audio = default,
                        AnswerText = Recorded(carried, ReadText(text.Reader, failure, thinking.Token), read),
                    };
                    await foreach (var item in voice.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
                    {
                        while (others.TryDequeue(out var other))
                        {
                            yield return new ThinkerUpdate(other);
                        }

                        if (item is AnswerCompleted done)
                        {
                            completed = done;
                            continue;
                        }

                        if (item is TextDelta delta)
                        {
                            spoken.Append(delta.Text);
                        }

                        yield return item;
                    }

                    whole = Joined(whole, completed);
                    string unspoken = Unspoken(read.ToString(), spoken.ToString());
                    // The channel's completion: the thinker has finished and all its text was read.
                    bool moreText = unspoken.Length > 0 || !text.Reader.Completion.IsCompleted;
                    if (completed?.StopReason is not (AnswerStopReason.Budget or AnswerStopReason.Context) || voiceRequest.MaxTokens > 0 || !moreText)
                    {
                        break;
                    }

                    logger.LogDebug("The thinker's answer outlasts one voice answer ({Steps} steps); it goes on in another.", completed.Steps);
                    carried = unspoken;
                }

                if (whole is not null)
                {
                    while (others.TryDequeue(out var other))
                    {
                        yield return new ThinkerUpdate(other);
                    }

                    yield return whole;
                }
            }
        }
        finally
        {
            // Over, stopped or failed: the thinker's request is not wanted any more.
            await thinking.CancelAsync().ConfigureAwait(false);
            await pump.ConfigureAwait(false);
        }

        while (others.TryDequeue(out var other))
        {
            yield return new ThinkerUpdate(other);
        }
    }

    // Text carried over from a voice answer that ran out of budget, then the thinker's text; what is handed out is recorded.
    private static async IAsyncEnumerable<string> Recorded(string carried, IAsyncEnumerable<string> text, StringBuilder read)
    {
        if (carried.Length > 0)
        {
            read.Append(carried);
            yield return carried;
        }

        await foreach (string piece in text.ConfigureAwait(false))
        {
            read.Append(piece);
            yield return piece;
        }
    }

    // What a voice answer was handed but did not speak. Its spoken text is a prefix of what it was handed; a character
    // whose first token was spoken but whose text was not yet shown is spoken again (rather than lost).
    private static string Unspoken(string read, string spoken) =>
        read.StartsWith(spoken, StringComparison.Ordinal) ? read[spoken.Length..] : "";

    // The voice answers of one thinker answer, reported as one.
    private static AnswerCompleted? Joined(AnswerCompleted? before, AnswerCompleted? next) => (before, next) switch
    {
        (null, _) => next,
        (_, null) => before,
        _ => next with
        {
            PromptTokens = before.PromptTokens + next.PromptTokens,
            Steps = before.Steps + next.Steps,
            SpeechSeconds = before.SpeechSeconds + next.SpeechSeconds,
            TimeToFirstSpeech = before.TimeToFirstSpeech ?? next.TimeToFirstSpeech,
            Elapsed = before.Elapsed + next.Elapsed,
            Tokens = [.. before.Tokens.Zip(next.Tokens, (a, b) => (IReadOnlyList<int>)[.. a, .. b])],
            TextTokens = before.TextTokens + next.TextTokens,
        },
    };

    // The thinker's text, piece by piece; its failure, if it failed, once the pieces before it are read.
    private static async IAsyncEnumerable<string> ReadText(ChannelReader<string> text, StrongBox<Exception?> failure, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (await text.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (text.TryRead(out string? piece))
            {
                yield return piece;
            }
        }

        if (Volatile.Read(ref failure.Value) is { } error)
        {
            throw error;
        }
    }

    // Streams the thinker's answer: text to the voice, the rest to the caller. Never throws: a failure is described and kept.
    private async Task ThinkAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, ChannelWriter<string> text, ConcurrentQueue<ChatResponseUpdate> others, StrongBox<Exception?> failure, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var update in thinker.GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
            {
                List<AIContent>? rest = null;
                foreach (var content in update.Contents)
                {
                    if (content is TextContent piece)
                    {
                        if (!string.IsNullOrEmpty(piece.Text))
                        {
                            text.TryWrite(piece.Text);
                        }
                    }
                    else if (content is not TextReasoningContent)
                    {
                        (rest ??= []).Add(content);
                    }
                }

                if (rest is not null || update.FinishReason is not null)
                {
                    others.Enqueue(new ChatResponseUpdate(update.Role ?? ChatRole.Assistant, rest ?? [])
                    {
                        ResponseId = update.ResponseId,
                        MessageId = update.MessageId,
                        ModelId = update.ModelId,
                        CreatedAt = update.CreatedAt,
                        FinishReason = update.FinishReason,
                        RawRepresentation = update.RawRepresentation,
                        AdditionalProperties = update.AdditionalProperties,
                    });
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopped by the turn: nothing to report.
        }
        catch (Exception e)
        {
            var described = MiniOmniThinkerException.From(e, thinker.GetService<ChatClientMetadata>(), options?.ModelId, thinker.GetType().Name);
            logger.LogWarning("{Message}", described.Message);
            Volatile.Write(ref failure.Value, described);
        }
        finally
        {
            text.TryComplete();
        }
    }
}
