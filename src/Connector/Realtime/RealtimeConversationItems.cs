using System.Diagnostics.CodeAnalysis;
using System.Text;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// Conversation items a realtime session's client creates: checked and read into turns (text, and for a user audio),
/// added to the conversation or, for an out-of-band response, kept to themselves. Used under the session's gate.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeConversationItems(RealtimeSessionContext session, RealtimeTranscriber transcriber)
{
    /// <summary>Adds the item of <paramref name="create"/> to the conversation, and says so.</summary>
    public async Task AddAsync(CreateConversationItemRealtimeClientMessage create)
    {
        var item = create.Item ?? throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, "The conversation item message carries no item.");
        var entry = ToEntry(item);
        session.Conversation.Add(entry);
        if (entry.Role == ChatRole.User && entry.Audio is not null && entry.Text is null && session.Settings.TranscribesUserSpeech(session.ClientOptions))
        {
            transcriber.Defer(entry);
        }
        else if (entry.Audio is null)
        {
            session.PreambleAhead.Refresh();
        }

        await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ConversationItemAdded)
        {
            Item = new RealtimeConversationItem(item.Contents, entry.Id, entry.Role)
            {
                RawRepresentation = new MiniOmniRealtimeItemDetails(entry.Status, session.Conversation.PreviousId(entry), Speaks: false),
            },
        }).ConfigureAwait(false);
    }

    /// <summary>A conversation of <paramref name="items"/> alone, for a response that answers out of band.</summary>
    public RealtimeConversation OutOfBand(IEnumerable<RealtimeConversationItem> items)
    {
        var conversation = new RealtimeConversation();
        foreach (var item in items)
        {
            conversation.Add(ToEntry(item));
        }

        return conversation;
    }

    /// <summary>A client's conversation item as a turn: its text, and for a user its audio (a text part beside audio is taken as its transcript).</summary>
    private ConversationEntry ToEntry(RealtimeConversationItem item)
    {
        if (item.Contents?.Any(c => c is FunctionCallContent or FunctionResultContent) == true)
        {
            return ToToolExchange(item);
        }

        var role = item.Role ?? throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"Conversation item '{item.Id}' has no role; give it User, Assistant or System.");
        if (role != ChatRole.User && role != ChatRole.Assistant && role != ChatRole.System)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"Conversation item '{item.Id}' has the role '{role}'; Mini-Omni conversations have User, Assistant and System turns.");
        }

        var text = new StringBuilder();
        float[]? audio = null;
        foreach (var content in item.Contents ?? [])
        {
            switch (content)
            {
                case TextContent part:
                    text.Append(part.Text);
                    break;
                case DataContent data when data.HasTopLevelMediaType("audio"):
                    if (role == ChatRole.User)
                    {
                        var samples = RealtimeInputAudio.DecodeWhole(data, session.Settings.Options.InputAudioFormat);
                        audio = audio is null ? samples : [.. audio, .. samples];
                    }

                    break;
                default:
                    throw new RealtimeRequestException(
                        RealtimeErrorCodes.UnsupportedContent,
                        $"Conversation item '{item.Id}' holds {content.GetType().Name}{(content is DataContent d ? $" ({d.MediaType})" : string.Empty)}; Mini-Omni turns hold text and, for the user, audio; a function call or its result is an item of its own.");
            }
        }

        if (audio is { Length: > RealtimeTurnTaker.MaximumTurnSamples })
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, $"Conversation item '{item.Id}' holds {audio.Length / (double)RealtimeTurnTaker.InputRate:F1} s of audio; Mini-Omni hears at most 30 s.");
        }

        if (audio is null && text.Length == 0)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"Conversation item '{item.Id}' has neither text nor audio.");
        }

        return new ConversationEntry(item.Id ?? session.NewId("item"), role) { Audio = audio, Text = text.Length > 0 ? text.ToString() : null };
    }

    /// <summary>A function call (the client replays one) or a function's result, alone in its item as OpenAI's items hold them; MEAI leaves their role unset.</summary>
    private ConversationEntry ToToolExchange(RealtimeConversationItem item)
    {
        if (item.Contents.Count != 1)
        {
            throw new RealtimeRequestException(
                RealtimeErrorCodes.UnsupportedContent,
                $"Conversation item '{item.Id}' holds {item.Contents.Count} contents with a function call or result; such an item holds that one content.");
        }

        string id = item.Id ?? session.NewId("item");
        return item.Contents[0] switch
        {
            FunctionCallContent call when !string.IsNullOrWhiteSpace(call.Name) => new ConversationEntry(id, ChatRole.Assistant) { FunctionCall = call },
            FunctionCallContent => throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"The function call of conversation item '{item.Id}' has no name."),
            FunctionResultContent result => new ConversationEntry(id, ChatRole.Tool) { FunctionResult = result },
            var other => throw new InvalidOperationException($"Unexpected {other.GetType().Name}."),
        };
    }
}
