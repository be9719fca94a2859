using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// A realtime answer written by the session's thinker (<see cref="MiniOmniRealtimeClientOptions.Thinker"/>): the spoken
/// turn is transcribed with Mini-Omni's ASR task, the thinker answers the session's conversation as chat messages, and
/// Mini-Omni speaks its text while it streams. The events are the engine's, so the responder streams them as it streams
/// Mini-Omni's own answers.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal static class RealtimeThinking
{
    public static async IAsyncEnumerable<MiniOmniEvent> AnswerAsync(RealtimeSessionContext session, RealtimeResponse response, IChatClient thinker, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var question = response.Question;
        var options = session.ClientOptions;
        string asked = question.Text ?? "";
        if (question.Audio is not null && string.IsNullOrWhiteSpace(question.Text))
        {
            asked = await TranscribeAsync(session.Engine, question.Audio, options, cancellationToken).ConfigureAwait(false);
            if (asked.Length > 0)
            {
                // Later turns (and their thinker) see the question as words at once, not after the deferred transcription.
                response.Conversation.SetText(question, asked);
            }
        }

        var messages = new List<ChatMessage>();
        if (!string.IsNullOrWhiteSpace(response.Plan.Instructions))
        {
            messages.Add(new ChatMessage(ChatRole.System, response.Plan.Instructions));
        }

        foreach (var (role, text) in response.Conversation.TurnsBefore(question))
        {
            if (role == ChatRole.User)
            {
                messages.Add(new ChatMessage(role, string.IsNullOrWhiteSpace(text) ? RealtimeConversation.UntranscribedSpeech : text));
            }
            else if (!string.IsNullOrWhiteSpace(text))
            {
                // An answer cut off before any of it was heard said nothing, and is left out.
                messages.Add(new ChatMessage(role, text));
            }
        }

        messages.Add(new ChatMessage(ChatRole.User, asked.Length > 0 ? asked : RealtimeConversation.UntranscribedSpeech));
        var voice = new ThinkerVoice(thinker, session.Engine, session.Logger);
        var voiceRequest = new MiniOmniRequest { Sampling = options.Sampling, MaxTokens = response.Plan.MaxTokens, EncoderMode = options.EncoderMode };
        await foreach (var item in voice.AnswerAsync(messages, asked, new ChatOptions(), response.Plan.Speaks, voiceRequest, cancellationToken).ConfigureAwait(false))
        {
            yield return item;
        }
    }

    private static async Task<string> TranscribeAsync(IMiniOmniEngine engine, float[] audio, MiniOmniRealtimeClientOptions options, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = audio, MaxTokens = options.TranscriptionMaxTokens, EncoderMode = options.EncoderMode };
        await foreach (var item in engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (item is TextDelta delta)
            {
                text.Append(delta.Text);
            }
        }

        return text.ToString().Trim();
    }
}
