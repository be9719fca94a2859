using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// Drops the input audio not yet committed (OpenAI's <c>input_audio_buffer.clear</c>, which Microsoft.Extensions.AI 11.0
/// has no message for); the session answers with <see cref="MiniOmniRealtimeServerMessageTypes.InputAudioCleared"/>.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class InputAudioBufferClearRealtimeClientMessage : RealtimeClientMessage;

/// <summary>
/// Stops the answers still generating (OpenAI's <c>response.cancel</c>, which Microsoft.Extensions.AI 11.0 has no message
/// for): each ends with its response-done, status cancelled. Nothing generating is not an error.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class CancelResponseRealtimeClientMessage : RealtimeClientMessage
{
    /// <summary>The response to stop; null stops every answer still generating.</summary>
    public string? ResponseId { get; set; }
}

/// <summary>
/// Cuts an assistant item's speech at <see cref="AudioEnd"/> and its text to what was heard by then (OpenAI's
/// <c>conversation.item.truncate</c>, which Microsoft.Extensions.AI 11.0 has no message for); an answer still generating
/// is stopped first. The session answers with an <see cref="AnswerTruncatedRealtimeServerMessage"/>.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class TruncateConversationItemRealtimeClientMessage : RealtimeClientMessage
{
    /// <summary>The assistant item to cut.</summary>
    public string? ItemId { get; set; }

    /// <summary>The content part to cut; Mini-Omni's answers have one, at 0.</summary>
    public int ContentIndex { get; set; }

    /// <summary>How much of the item's speech was heard (played) and is kept.</summary>
    public TimeSpan AudioEnd { get; set; }
}

/// <summary>
/// Asks for an item of the conversation as the session keeps it (OpenAI's <c>conversation.item.retrieve</c>); the session
/// answers with a <see cref="ResponseOutputItemRealtimeServerMessage"/> of type <see cref="MiniOmniRealtimeServerMessageTypes.ConversationItemRetrieved"/>.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class RetrieveConversationItemRealtimeClientMessage : RealtimeClientMessage
{
    /// <summary>The item to retrieve.</summary>
    public string? ItemId { get; set; }
}

/// <summary>
/// Takes an item out of the conversation, so later answers no longer hear it (OpenAI's <c>conversation.item.delete</c>); an
/// answer still generating it is stopped first. The session answers with a <see cref="ConversationItemDeletedRealtimeServerMessage"/>.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class DeleteConversationItemRealtimeClientMessage : RealtimeClientMessage
{
    /// <summary>The item to delete.</summary>
    public string? ItemId { get; set; }
}
