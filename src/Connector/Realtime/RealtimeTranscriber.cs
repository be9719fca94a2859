using System.Diagnostics.CodeAnalysis;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Transcribes a realtime session's spoken user turns with Mini-Omni's ASR task, on the session's work queue, so later
/// preambles show them as text and the client gets input transcription messages. Turns not yet worth the engine's time
/// wait here until an answer needs them. Used under the session's gate.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeTranscriber(RealtimeSessionContext session)
{
    private readonly List<ConversationEntry> _deferred = [];

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
        var token = session.Lifetime;
        try
        {
            await Task.Yield();
            await previous.WaitAsync(token).ConfigureAwait(false);
            var text = new StringBuilder();
            UsageDetails? usage = null;
            var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = entry.Audio, MaxTokens = session.ClientOptions.TranscriptionMaxTokens, EncoderMode = session.ClientOptions.EncoderMode };
            await foreach (var update in session.Engine.GenerateAsync(request, token).ConfigureAwait(false))
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
            }

            string transcript = text.ToString().Trim();
            session.Conversation.SetText(entry, transcript);
            await session.EmitAsync(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionCompleted)
            {
                ItemId = entry.Id,
                ContentIndex = 0,
                Transcription = transcript,
                Usage = usage,
            }).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The session is closing.
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
