using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Transcribes a realtime session's spoken user turns with Mini-Omni's ASR task, so later preambles show them as text and
/// the client gets input transcription messages. A turn an answer takes as its question is transcribed beside the answer
/// (<see cref="Beside"/>: one encoding, its own row in the answer's steps, off the session's work queue, so the next turn
/// never waits for it); other turns by an ASR request of their own on the session's work queue. Turns not yet worth the
/// engine's time wait here until an answer needs them. Used under the session's gate.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeTranscriber(RealtimeSessionContext session)
{
    private readonly List<ConversationEntry> _deferred = [];
    private readonly List<Task> _following = [];

    /// <summary>Completes when every transcript followed beside an answer has been reported.</summary>
    public Task Following
    {
        get
        {
            lock (_following)
            {
                return Task.WhenAll(_following);
            }
        }
    }

    /// <summary>
    /// A transcription of <paramref name="entry"/> for the answer that takes it as its question, reported as the engine
    /// decodes it. If the answer never reaches the engine, the turn is queued for an ASR request of its own instead
    /// (<see cref="Abandoned"/>).
    /// </summary>
    public QuestionTranscription Beside(ConversationEntry entry)
    {
        var transcription = new QuestionTranscription(session.ClientOptions.TranscriptionMaxTokens, session.Lifetime);
        var following = Task.Run(() => ReportAsync(entry, transcription.ReadAllAsync(session.Lifetime)));
        lock (_following)
        {
            _following.RemoveAll(t => t.IsCompleted);
            _following.Add(following);
        }

        return transcription;
    }

    /// <summary>The answer that was to transcribe <paramref name="entry"/> beside it ended before the engine took it on: it is transcribed on its own.</summary>
    public void Abandoned(ConversationEntry entry, QuestionTranscription transcription)
    {
        // A closed session transcribes nothing more (and is about to drain its work queue).
        if (transcription.TryAbandon() && !session.Lifetime.IsCancellationRequested)
        {
            Queue(entry);
        }
    }

    /// <summary>Queues the transcription of <paramref name="entry"/> after the session's work queued so far.</summary>
    public void Queue(ConversationEntry entry) => session.Work.Enqueue(previous => TranscribeAsync(entry, previous));

    /// <summary>Keeps <paramref name="entry"/> to be transcribed before the next answer, which will show it in its preamble.</summary>
    public void Defer(ConversationEntry entry) => _deferred.Add(entry);

    /// <summary>Forgets a deferred turn that an answer takes as its question (it is transcribed after its answer).</summary>
    public void Forget(ConversationEntry entry) => _deferred.Remove(entry);

    /// <summary>Queues every deferred turn's transcription.</summary>
    public void QueueDeferred()
    {
        foreach (var entry in _deferred)
        {
            Queue(entry);
        }

        _deferred.Clear();
    }

    private async Task TranscribeAsync(ConversationEntry entry, Task previous)
    {
        try
        {
            await Task.Yield();
            await previous.WaitAsync(session.Lifetime).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (session.Lifetime.IsCancellationRequested)
        {
            return;
        }

        var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = entry.Audio, MaxTokens = session.ClientOptions.TranscriptionMaxTokens, EncoderMode = session.ClientOptions.EncoderMode };
        await ReportAsync(entry, session.Engine.GenerateAsync(request, session.Lifetime)).ConfigureAwait(false);
    }

    /// <summary>
    /// Reports the transcript of <paramref name="entry"/> that <paramref name="updates"/> stream (an ASR answer's events)
    /// as its reader reads them: deltas to the client as they pass, the text kept for later preambles, and the completed
    /// message once they end. A thinker's transcription of its question is the turn's transcription this way, so the
    /// turn is heard once. A failure passes on to the reader.
    /// </summary>
    public async IAsyncEnumerable<MiniOmniEvent> Reporting(ConversationEntry entry, IAsyncEnumerable<MiniOmniEvent> updates, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        UsageDetails? usage = null;
        await foreach (var update in updates.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (update is TextDelta delta)
            {
                text.Append(delta.Text);
                await session.EmitAsync(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionDelta) { ItemId = entry.Id, ContentIndex = 0, Transcription = delta.Text }).ConfigureAwait(false);
            }
            else if (update is AnswerCompleted completed)
            {
                usage = RealtimeUsage.From(completed, speaks: false);
            }

            yield return update;
        }

        string transcript = text.ToString().Trim();
        session.Conversation.SetText(entry, transcript);
        session.PreambleAhead.Refresh();
        await session.EmitAsync(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionCompleted)
        {
            ItemId = entry.Id,
            ContentIndex = 0,
            Transcription = transcript,
            Usage = usage,
        }).ConfigureAwait(false);
    }

    // Streams a transcript's deltas to the client and keeps its text for later preambles.
    private async Task ReportAsync(ConversationEntry entry, IAsyncEnumerable<MiniOmniEvent> updates)
    {
        var token = session.Lifetime;
        try
        {
            await foreach (var _ in Reporting(entry, updates).ConfigureAwait(false))
            {
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The session is closing.
        }
        catch (QuestionTranscriptionAbandonedException)
        {
            // Its answer never reached the engine: the turn was queued for a transcription of its own.
        }
        catch (Exception e)
        {
            session.Logger.LogError(e, "Realtime session {Session}: transcribing {Item} failed.", session.IdPrefix, entry.Id);
            await session.EmitAsync(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionFailed)
            {
                ItemId = entry.Id,
                ContentIndex = 0,
                Error = new ErrorContent($"Transcribing the turn failed: {e.Message}") { ErrorCode = RealtimeErrorCodes.TranscriptionFailed },
            }).ConfigureAwait(false);
        }
    }
}
