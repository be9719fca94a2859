using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;

namespace MiniOmni.SK;

/// <summary>
/// What a realtime session's client does to items already in the conversation: cut an answer to what was heard, ask
/// for an item, take one out. An answer still generating its item is stopped first. Used under the session's gate.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeItemEditor(RealtimeSessionContext session, RealtimeResponder responder, RealtimeTranscriber transcriber)
{
    // Audio positions come in whole milliseconds; the speech's length does not.
    private static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(1);

    /// <summary>Cuts an assistant item's speech at the point given, and its text to what was heard by then.</summary>
    /// <exception cref="RealtimeRequestException">The item is not in the conversation, is not a spoken answer, or the point is outside its speech.</exception>
    public async Task TruncateAsync(TruncateConversationItemRealtimeClientMessage truncate)
    {
        var entry = Find(truncate.ItemId);
        if (entry.Role != ChatRole.Assistant)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidItem, $"Item '{entry.Id}' is a {entry.Role.Value} item; only assistant items (answers) can be truncated.");
        }

        if (truncate.ContentIndex != 0)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidItem, $"Item '{entry.Id}' has one content part, at index 0; content_index {truncate.ContentIndex} does not exist.");
        }

        if (truncate.AudioEnd < TimeSpan.Zero)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidItem, $"audio_end_ms is {truncate.AudioEnd.TotalMilliseconds:0}; it must be 0 or more.");
        }

        await responder.StopAnswerOfAsync(entry).ConfigureAwait(false);
        var speech = entry.Speech ?? throw new RealtimeRequestException(RealtimeErrorCodes.InvalidItem, $"Item '{entry.Id}' is a text answer; it has no audio to truncate.");
        var total = speech.AudioDuration;
        if (truncate.AudioEnd > total + Tolerance)
        {
            throw new RealtimeRequestException(
                RealtimeErrorCodes.InvalidItem,
                $"audio_end_ms is {truncate.AudioEnd.TotalMilliseconds:0}, beyond the {Math.Floor(total.TotalMilliseconds):0} ms of audio item '{entry.Id}' holds.");
        }

        var end = truncate.AudioEnd < total ? truncate.AudioEnd : total;
        string kept = speech.HeardText(end);
        session.Conversation.SetText(entry, kept);
        session.PreambleAhead.Refresh();
        entry.AudioEnd = end;
        if (end < total)
        {
            entry.Status = RealtimeItemStatus.Incomplete;
        }

        await session.EmitAsync(new AnswerTruncatedRealtimeServerMessage { ItemId = entry.Id, AudioEnd = end, Text = kept, ContentIndex = 0 }).ConfigureAwait(false);
    }

    /// <summary>Sends the item asked for, as the conversation keeps it now.</summary>
    /// <exception cref="RealtimeRequestException">The item is not in the conversation.</exception>
    public async Task RetrieveAsync(RetrieveConversationItemRealtimeClientMessage retrieve)
    {
        var entry = Find(retrieve.ItemId);
        await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.ConversationItemRetrieved)
        {
            Item = ItemOf(entry, session.Conversation.PreviousId(entry)),
        }).ConfigureAwait(false);
    }

    /// <summary>Takes the item out of the conversation: later answers no longer hear it.</summary>
    /// <exception cref="RealtimeRequestException">The item is not in the conversation.</exception>
    public async Task DeleteAsync(DeleteConversationItemRealtimeClientMessage delete)
    {
        var entry = Find(delete.ItemId);
        await responder.StopAnswerOfAsync(entry).ConfigureAwait(false);
        transcriber.Forget(entry);
        session.Conversation.Remove(entry);
        session.PreambleAhead.Refresh();
        await session.EmitAsync(new ConversationItemDeletedRealtimeServerMessage { ItemId = entry.Id }).ConfigureAwait(false);
    }

    /// <summary>A turn as an item: its text (a spoken answer's as heard), and for a spoken user turn its audio (WAV) before its transcript.</summary>
    public static RealtimeConversationItem ItemOf(ConversationEntry entry, string? previousItemId)
    {
        var contents = new List<AIContent>();
        if (entry.Audio is { } audio)
        {
            using var wav = new MemoryStream();
            Pcm16Wave.Write(wav, audio, RealtimeTurnTaker.InputRate);
            contents.Add(new DataContent(wav.ToArray(), MiniOmniMediaTypes.Wav));
        }

        if (entry.Text is { } text)
        {
            contents.Add(new TextContent(text));
        }

        return new RealtimeConversationItem(contents, entry.Id, entry.Role)
        {
            RawRepresentation = new MiniOmniRealtimeItemDetails(entry.Status, previousItemId, entry.Speech is not null),
        };
    }

    private ConversationEntry Find(string? itemId) =>
        (itemId is null ? null : session.Conversation.Find(itemId))
        ?? throw new RealtimeRequestException(RealtimeErrorCodes.ItemNotFound, itemId is null ? "The message names no item (item_id)." : $"There is no item '{itemId}' in the conversation.");
}
