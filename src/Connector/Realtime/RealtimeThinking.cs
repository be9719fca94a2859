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
    public static async IAsyncEnumerable<MiniOmniEvent> AnswerAsync(RealtimeSessionContext session, RealtimeResponse response, IChatClient thinker, RealtimeTranscriber transcriber, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var question = response.Question;
        var options = session.ClientOptions;
        string asked = question.Text ?? "";
        if (question.Audio is not null && string.IsNullOrWhiteSpace(question.Text))
        {
            // The session's own turn, when it transcribes spoken turns, is reported from this transcription: heard once.
            var reporter = session.Settings.TranscribesUserSpeech(options) && response.Conversation == session.Conversation ? transcriber : null;
            asked = await TranscribeAsync(session.Engine, question, reporter, options, cancellationToken).ConfigureAwait(false);
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

        var (before, toolExchanges) = response.Conversation.TurnsAround(question);
        foreach (var entry in before)
        {
            if (ToMessage(entry) is { } message)
            {
                messages.Add(message);
            }
        }

        messages.Add(new ChatMessage(ChatRole.User, asked.Length > 0 ? asked : RealtimeConversation.UntranscribedSpeech));
        messages.AddRange(toolExchanges.Select(ToMessage).OfType<ChatMessage>());
        // The tools the client declared are the thinker's; their calls go back to the client as function call items.
        var thinkerOptions = new ChatOptions { Tools = response.Plan.Tools.Offered ? [.. response.Plan.Tools.Tools] : null };
        var voice = new ThinkerVoice(thinker, session.Engine, session.Logger);
        var voiceRequest = new MiniOmniRequest { Sampling = options.Sampling, MaxTokens = response.Plan.MaxTokens, EncoderMode = options.EncoderMode };
        await foreach (var item in voice.AnswerAsync(messages, asked, thinkerOptions, response.Plan.Speaks, voiceRequest, cancellationToken).ConfigureAwait(false))
        {
            yield return item;
        }
    }

    // A turn as a chat message: a call made, a result given, or what was said (an answer cut off before any of it was heard said nothing).
    private static ChatMessage? ToMessage(ConversationEntry entry) => entry switch
    {
        { FunctionCall: { } call } => new ChatMessage(ChatRole.Assistant, [call]),
        { FunctionResult: { } result } => new ChatMessage(ChatRole.Tool, [result]),
        { Role: var role } when role == ChatRole.User => new ChatMessage(role, string.IsNullOrWhiteSpace(entry.Text) ? RealtimeConversation.UntranscribedSpeech : entry.Text),
        _ when !string.IsNullOrWhiteSpace(entry.Text) => new ChatMessage(entry.Role, entry.Text),
        _ => null,
    };

    private static async Task<string> TranscribeAsync(
        IMiniOmniEngine engine, ConversationEntry question, RealtimeTranscriber? reporter, MiniOmniRealtimeClientOptions options, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = question.Audio, MaxTokens = options.TranscriptionMaxTokens, EncoderMode = options.EncoderMode };
        var transcript = engine.GenerateAsync(request, cancellationToken);
        if (reporter is not null)
        {
            transcript = reporter.Reporting(question, transcript, cancellationToken);
        }

        await foreach (var item in transcript.ConfigureAwait(false))
        {
            if (item is TextDelta delta)
            {
                text.Append(delta.Text);
            }
        }

        return text.ToString().Trim();
    }
}
