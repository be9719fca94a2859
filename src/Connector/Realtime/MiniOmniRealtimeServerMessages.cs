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

    /// <summary>The answer's text as kept in the conversation: the share of the text that matches the share of the audio heard.</summary>
    public string Text { get; set; } = string.Empty;
}
