using System.Text;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK.AI;

/// <summary>
/// Gathers a spoken answer's streamed updates into one <see cref="ChatResponse"/>, as the chat clients' non-streaming
/// calls give it: one assistant message holding the text, the speech as one WAV, then whatever else the answer carried
/// (function calls, errors), with the usage, ids and finish reason of the stream.
/// </summary>
internal sealed class SpokenResponseBuilder(ChatResponse response)
{
    private readonly StringBuilder _text = new();
    private readonly List<float> _speech = [];
    private readonly List<AIContent> _contents = [];

    /// <summary>Takes one update; <paramref name="speech"/> holds the samples of its speech chunk, whose content is then left out.</summary>
    public void Add(ChatResponseUpdate update, ReadOnlySpan<float> speech)
    {
        response.ResponseId ??= update.ResponseId;
        response.ModelId ??= update.ModelId;
        response.FinishReason = update.FinishReason ?? response.FinishReason;
        _speech.AddRange(speech);
        foreach (var content in update.Contents)
        {
            switch (content)
            {
                case TextContent part:
                    _text.Append(part.Text);
                    break;
                case UsageContent usage:
                    response.Usage = usage.Details;
                    break;
                case DataContent data when data.MediaType == MiniOmniMediaTypes.SpeechChunk:
                    // Its samples came as speech, and go out in the answer's one WAV.
                    break;
                default:
                    _contents.Add(content);
                    break;
            }
        }
    }

    /// <summary>The response with its one assistant message.</summary>
    public ChatResponse Build()
    {
        var message = new ChatMessage(ChatRole.Assistant, []) { MessageId = response.ResponseId };
        if (_text.Length > 0)
        {
            message.Contents.Add(new TextContent(_text.ToString()));
        }

        if (_speech.Count > 0)
        {
            message.Contents.Add(new DataContent(MiniOmniMediaTypes.EncodeWav(_speech.ToArray()), MiniOmniMediaTypes.Wav) { Name = "answer.wav" });
        }

        foreach (var content in _contents)
        {
            message.Contents.Add(content);
        }

        response.Messages.Add(message);
        return response;
    }
}
