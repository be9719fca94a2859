using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// The message types a Mini-Omni realtime session adds to MEAI's: turn detection and barge-in truncation, which
/// Microsoft.Extensions.AI (11.0) has no types for. The values follow MEAI's naming.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public static class MiniOmniRealtimeServerMessageTypes
{
    /// <summary>The detector heard the user start speaking (an <see cref="InputSpeechRealtimeServerMessage"/>); a playing answer should stop.</summary>
    public static RealtimeServerMessageType InputSpeechStarted { get; } = new("InputAudioBufferSpeechStarted");

    /// <summary>The detector heard the user stop speaking (an <see cref="InputSpeechRealtimeServerMessage"/>).</summary>
    public static RealtimeServerMessageType InputSpeechStopped { get; } = new("InputAudioBufferSpeechStopped");

    /// <summary>The input audio became a user item (an <see cref="InputSpeechRealtimeServerMessage"/>), by a commit message or the detector.</summary>
    public static RealtimeServerMessageType InputAudioCommitted { get; } = new("InputAudioBufferCommitted");

    /// <summary>The input audio not yet committed was dropped, as an <see cref="InputAudioBufferClearRealtimeClientMessage"/> asked (an <see cref="InputSpeechRealtimeServerMessage"/>).</summary>
    public static RealtimeServerMessageType InputAudioCleared { get; } = new("InputAudioBufferCleared");

    /// <summary>An interrupted answer was cut to what the user heard (an <see cref="AnswerTruncatedRealtimeServerMessage"/>).</summary>
    public static RealtimeServerMessageType AnswerTruncated { get; } = new("ConversationItemTruncated");

    /// <summary>An item as a <see cref="RetrieveConversationItemRealtimeClientMessage"/> asked for it (a <see cref="ResponseOutputItemRealtimeServerMessage"/>).</summary>
    public static RealtimeServerMessageType ConversationItemRetrieved { get; } = new("ConversationItemRetrieved");

    /// <summary>An item was taken out of the conversation (a <see cref="ConversationItemDeletedRealtimeServerMessage"/>).</summary>
    public static RealtimeServerMessageType ConversationItemDeleted { get; } = new("ConversationItemDeleted");
}

/// <summary>Why a response ended cancelled or incomplete (OpenAI's <c>status_details.reason</c>), as a response-done message's <see cref="Key"/> property.</summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public static class MiniOmniRealtimeStatusReasons
{
    /// <summary>The key of the reason in a response-done message's <see cref="ResponseCreatedRealtimeServerMessage.AdditionalProperties"/>.</summary>
    public const string Key = "status_reason";

    /// <summary>The client cancelled it (a <see cref="CancelResponseRealtimeClientMessage"/>, or a truncate or delete of its item).</summary>
    public const string ClientCancelled = "client_cancelled";

    /// <summary>The user started speaking over it (barge-in).</summary>
    public const string TurnDetected = "turn_detected";

    /// <summary>It reached its token budget.</summary>
    public const string MaxOutputTokens = "max_output_tokens";
}

/// <summary>
/// What OpenAI's events say of a conversation item beyond MEAI's <see cref="RealtimeConversationItem"/>: the
/// <see cref="RealtimeConversationItem.RawRepresentation"/> of the items a Mini-Omni session announces.
/// </summary>
/// <param name="Status">"completed", "incomplete" (cancelled, cut off by its budget, failed or truncated) or "in_progress".</param>
/// <param name="PreviousItemId">The item before it in the conversation; null when it is the first, or out of band.</param>
/// <param name="Speaks">For an assistant item: whether it speaks (its content is audio with a transcript) or writes text.</param>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed record MiniOmniRealtimeItemDetails(string Status, string? PreviousItemId, bool Speaks = true);

/// <summary>An item was taken out of the conversation, as a <see cref="DeleteConversationItemRealtimeClientMessage"/> asked.</summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class ConversationItemDeletedRealtimeServerMessage : RealtimeServerMessage
{
    /// <summary>Creates the message.</summary>
    public ConversationItemDeletedRealtimeServerMessage()
    {
        Type = MiniOmniRealtimeServerMessageTypes.ConversationItemDeleted;
    }

    /// <summary>The item deleted.</summary>
    public string? ItemId { get; set; }
}

/// <summary>Turn detection on the session's input audio: speech started or stopped, or audio committed as a user item.</summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class InputSpeechRealtimeServerMessage : RealtimeServerMessage
{
    /// <summary>Creates the message; <paramref name="type"/> is one of <see cref="MiniOmniRealtimeServerMessageTypes"/>' input types.</summary>
    public InputSpeechRealtimeServerMessage(RealtimeServerMessageType type)
    {
        Type = type;
    }

    /// <summary>The user item the speech belongs to (the item is added when the turn is committed).</summary>
    public string? ItemId { get; set; }

    /// <summary>For a commit: the item before the committed one in the conversation; null when it is the first.</summary>
    public string? PreviousItemId { get; set; }

    /// <summary>Where in the session's input audio, from its first appended sample: the start or end of speech, or the end of the committed audio.</summary>
    public TimeSpan AudioPosition { get; set; }
}

/// <summary>An answer cut short by the user speaking: the session keeps only what was heard of it in the conversation.</summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class AnswerTruncatedRealtimeServerMessage : RealtimeServerMessage
{
    /// <summary>Creates the message.</summary>
    public AnswerTruncatedRealtimeServerMessage()
    {
        Type = MiniOmniRealtimeServerMessageTypes.AnswerTruncated;
    }

    /// <summary>The answer's response.</summary>
    public string? ResponseId { get; set; }

    /// <summary>The answer's assistant item.</summary>
    public string? ItemId { get; set; }

    /// <summary>How much of the answer's audio was heard: playback is taken to run in real time from the first audio delta.</summary>
    public TimeSpan AudioEnd { get; set; }

    /// <summary>The answer's text as kept in the conversation: what was heard (see <see cref="AudioEnd"/>).</summary>
    public string Text { get; set; } = string.Empty;

    /// <summary>The content part cut; Mini-Omni's answers have one, at 0.</summary>
    public int ContentIndex { get; set; }
}
