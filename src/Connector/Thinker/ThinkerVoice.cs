using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
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
                var request = voiceRequest with
                {
                    Task = MiniOmniTask.ReadAloud,
                    Text = string.IsNullOrWhiteSpace(question) ? RealtimeConversation.UntranscribedSpeech : question,
                    Audio = default,
                    AnswerText = ReadText(text.Reader, failure, thinking.Token),
                };
                await foreach (var item in voice.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
                {
                    while (others.TryDequeue(out var other))
                    {
                        yield return new ThinkerUpdate(other);
                    }

                    yield return item;
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
