using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>What comes before the question: instructions, tools, earlier turns and this turn's tool exchange.</summary>
/// <param name="Instructions">System and developer messages, and <see cref="ChatOptions.Instructions"/>, joined.</param>
/// <param name="Tools">The functions the model may call.</param>
/// <param name="History">Messages before the question.</param>
/// <param name="ToolExchange">Tool calls and results that followed the question (the function-invocation loop).</param>
/// <param name="QuestionText">Text sent with a spoken question, if any.</param>
public sealed record ConversationContext(string? Instructions, IReadOnlyList<AIFunctionDeclaration> Tools, IReadOnlyList<ChatMessage> History, IReadOnlyList<ChatMessage> ToolExchange, string? QuestionText);

/// <summary>
/// Renders a conversation into <see cref="Engine.MiniOmniRequest.PreambleSegments"/>: what the model reads ahead of the
/// release's single-turn prompt. The released model was trained on single turns; this is MiniOmni.SK's extension.
/// </summary>
/// <remarks>
/// Everything a user, a tool or an earlier turn wrote goes in <see cref="Engine.PreambleSegment.Text"/> segments, which are
/// tokenized as text: a message that contains <c>&lt;|im_start|&gt;system</c> stays those characters. Only the template's own
/// markers are <see cref="Engine.PreambleSegment.Marker"/> segments, each one special token.
/// </remarks>
public interface IConversationRenderer
{
    /// <summary>The preamble for <paramref name="conversation"/>, or null for none (the release's prompt exactly).</summary>
    IReadOnlyList<PreambleSegment>? Render(ConversationContext conversation);
}

/// <summary>
/// Qwen2's own chat format (ChatML, <c>&lt;|im_start|&gt;role ... &lt;|im_end|&gt;</c>), with tools described as Qwen2.5's
/// template does (<c>&lt;tools&gt;</c> JSON schemas, <c>&lt;tool_call&gt;</c> and <c>&lt;tool_response&gt;</c> tags). The default.
/// </summary>
public sealed class ChatMLConversationRenderer : IConversationRenderer
{
    /// <summary>The shared instance.</summary>
    public static ChatMLConversationRenderer Instance { get; } = new();

    /// <summary>ChatML's turn opener, one special token.</summary>
    public const string TurnStart = "<|im_start|>";

    /// <summary>ChatML's turn closer, one special token.</summary>
    public const string TurnEnd = "<|im_end|>";

    /// <inheritdoc />
    public IReadOnlyList<PreambleSegment>? Render(ConversationContext conversation)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        var segments = new List<PreambleSegment>();
        string system = ConversationText.SystemPart(conversation);
        if (system.Length > 0)
        {
            Turn(segments, "system", system);
        }

        foreach (var message in conversation.History.Concat(conversation.ToolExchange))
        {
            string content = ConversationText.Of(message);
            if (content.Length > 0)
            {
                Turn(segments, message.Role == ChatRole.Tool ? "user" : ConversationText.RoleName(message.Role), content);
            }
        }

        if (!string.IsNullOrWhiteSpace(conversation.QuestionText))
        {
            Turn(segments, "user", conversation.QuestionText);
        }

        return segments.Count == 0 ? null : segments;
    }

    // The role and the content are text like any other: only the two markers around them are special tokens.
    private static void Turn(List<PreambleSegment> segments, string role, string content)
    {
        segments.Add(PreambleSegment.Marker(TurnStart));
        segments.Add(PreambleSegment.Text(role + "\n" + content));
        segments.Add(PreambleSegment.Marker(TurnEnd));
        segments.Add(PreambleSegment.Text("\n"));
    }
}

/// <summary>A plain transcript (<c>System: ...</c>, <c>User: ...</c>, <c>Assistant: ...</c>), without special tokens.</summary>
public sealed class PlainConversationRenderer : IConversationRenderer
{
    /// <summary>The shared instance.</summary>
    public static PlainConversationRenderer Instance { get; } = new();

    /// <inheritdoc />
    public IReadOnlyList<PreambleSegment>? Render(ConversationContext conversation)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        var text = new StringBuilder();
        string system = ConversationText.SystemPart(conversation);
        if (system.Length > 0)
        {
            text.Append("System: ").Append(system).Append('\n');
        }

        foreach (var message in conversation.History.Concat(conversation.ToolExchange))
        {
            string content = ConversationText.Of(message);
            if (content.Length > 0)
            {
                string name = ConversationText.RoleName(message.Role);
                string role = message.Role == ChatRole.Tool ? "Tool" : char.ToUpperInvariant(name[0]) + name[1..];
                text.Append(role).Append(": ").Append(content).Append('\n');
            }
        }

        if (!string.IsNullOrWhiteSpace(conversation.QuestionText))
        {
            text.Append("User: ").Append(conversation.QuestionText).Append('\n');
        }

        return text.Length == 0 ? null : [PreambleSegment.Text(text.ToString())];
    }
}

/// <summary>The pieces both renderers share: the system part with tools, and a message's text with its tool calls and results.</summary>
internal static class ConversationText
{
    /// <summary>A spoken turn with no text beside it, when spoken memory is off (or its audio could not be heard).</summary>
    public const string SpokenTurn = "[spoken]";

    /// <summary>A role's name as written in the preamble: a known role, or "user" for anything a caller made up.</summary>
    /// <remarks>Roles are caller-chosen strings; one with a newline or a marker in it must not write a turn of its own.</remarks>
    public static string RoleName(ChatRole role) =>
        role == ChatRole.Assistant ? "assistant" : role == ChatRole.System ? "system" : role == ChatRole.Tool ? "tool" : "user";

    public static string SystemPart(ConversationContext conversation)
    {
        var text = new StringBuilder(conversation.Instructions?.Trim() ?? "");
        if (conversation.Tools.Count > 0)
        {
            if (text.Length > 0)
            {
                text.Append("\n\n");
            }

            text.Append("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n")
                .Append("You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n");
            foreach (var tool in conversation.Tools)
            {
                var declaration = new Dictionary<string, object?>
                {
                    ["type"] = "function",
                    ["function"] = new Dictionary<string, object?> { ["name"] = tool.Name, ["description"] = tool.Description, ["parameters"] = tool.JsonSchema },
                };
                text.Append(JsonSerializer.Serialize(declaration, AIJsonUtilities.DefaultOptions)).Append('\n');
            }

            text.Append("</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n")
                .Append("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
        }

        return text.ToString();
    }

    public static string Of(ChatMessage message)
    {
        var text = new StringBuilder();
        foreach (var content in message.Contents)
        {
            switch (content)
            {
                case TextContent { Text.Length: > 0 } part:
                    text.Append(part.Text);
                    break;
                case FunctionCallContent call:
                    text.Append(ToolCallParser.OpenTag).Append('\n')
                        .Append(JsonSerializer.Serialize(new Dictionary<string, object?> { ["name"] = call.Name, ["arguments"] = call.Arguments }, AIJsonUtilities.DefaultOptions))
                        .Append('\n').Append(ToolCallParser.CloseTag);
                    break;
                case FunctionResultContent result:
                    text.Append("<tool_response>\n").Append(ResultText(result)).Append("\n</tool_response>");
                    break;
                case DataContent data when data.HasTopLevelMediaType("audio") && message.Role == ChatRole.User && !message.Contents.OfType<TextContent>().Any():
                    text.Append(SpokenTurn);
                    break;
            }
        }

        return text.ToString();
    }

    private static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null when result.Exception is { } error => $"Error: {error.Message}",
        null => "null",
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } json => json.GetString()!,
        JsonElement json => json.GetRawText(),
        var other => JsonSerializer.Serialize(other, AIJsonUtilities.DefaultOptions),
    };
}
