using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK.AI;

/// <summary>
/// Splits a streamed answer into what the user reads and the tool calls Qwen2's format wraps in
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>. Text is released as soon as it cannot be
/// the start of a tag; a tag's contents are held until it closes. One per answer; not thread-safe.
/// </summary>
internal sealed class ToolCallParser
{
    public const string OpenTag = "<tool_call>";
    public const string CloseTag = "</tool_call>";

    /// <summary>
    /// What an answer required to call a tool is made to begin with: the call's opening as the tool instructions spell it,
    /// with <paramref name="functionName"/> written in when one function is required. The model writes the rest.
    /// </summary>
    public static string RequiredOpening(string? functionName) => functionName is null
        ? $"{OpenTag}\n{{\"name\": \""
        : $"{OpenTag}\n{{\"name\": {JsonSerializer.Serialize(functionName)}, \"arguments\": ";

    private readonly StringBuilder _pending = new();
    private bool _insideCall;
    private int _callCount;

    /// <summary>Whether any tool call (valid or not) has started.</summary>
    public bool SawToolCall { get; private set; }

    /// <summary>Whether the answer so far could still turn out to be a tool call: nothing but white space and the start of the open tag.</summary>
    public bool MayStillBeToolCall { get; private set; } = true;

    /// <summary>Adds streamed text; returns the readable text and the tool calls (or errors for malformed ones) it completed, in order.</summary>
    public IReadOnlyList<AIContent> Append(string text)
    {
        _pending.Append(text);
        var output = new List<AIContent>();
        while (_pending.Length > 0)
        {
            string pending = _pending.ToString();
            if (_insideCall)
            {
                int close = pending.IndexOf(CloseTag, StringComparison.Ordinal);
                if (close < 0)
                {
                    break;
                }

                output.Add(ParseCall(pending[..close]));
                _pending.Remove(0, close + CloseTag.Length);
                _insideCall = false;
                continue;
            }

            int open = pending.IndexOf(OpenTag, StringComparison.Ordinal);
            if (open >= 0)
            {
                AddText(output, pending[..open]);
                _pending.Remove(0, open + OpenTag.Length);
                _insideCall = true;
                SawToolCall = true;
                continue;
            }

            // Hold back a tail that may be the start of the open tag.
            int held = PartialTagLength(pending);
            AddText(output, pending[..^held]);
            _pending.Remove(0, pending.Length - held);
            break;
        }

        if (MayStillBeToolCall && !SawToolCall)
        {
            MayStillBeToolCall = _pending.ToString().TrimStart().Length == 0 || OpenTag.StartsWith(_pending.ToString().TrimStart(), StringComparison.Ordinal);
        }

        return output;
    }

    /// <summary>The answer ended: releases held text, and reports a tool call left open as an error.</summary>
    public IReadOnlyList<AIContent> Complete()
    {
        var output = new List<AIContent>();
        if (_insideCall)
        {
            output.Add(new ErrorContent($"The model's tool call was not closed with {CloseTag}.") { ErrorCode = "invalid_tool_call", Details = _pending.ToString() });
        }
        else
        {
            AddText(output, _pending.ToString());
        }

        _pending.Clear();
        _insideCall = false;
        MayStillBeToolCall = false;
        return output;
    }

    private void AddText(List<AIContent> output, string text)
    {
        if (text.Length == 0)
        {
            return;
        }

        if (text.Trim().Length > 0)
        {
            MayStillBeToolCall = false;
        }

        output.Add(new TextContent(text));
    }

    private AIContent ParseCall(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(name.GetString()))
            {
                return Invalid(json, "it has no \"name\" string");
            }

            Dictionary<string, object?>? arguments = null;
            if (root.TryGetProperty("arguments", out var args))
            {
                if (args.ValueKind == JsonValueKind.String)
                {
                    // Some models write the arguments object as a JSON string.
                    using var inner = JsonDocument.Parse(args.GetString()!);
                    arguments = ToDictionary(inner.RootElement);
                }
                else if (args.ValueKind == JsonValueKind.Object)
                {
                    arguments = ToDictionary(args);
                }
                else if (args.ValueKind != JsonValueKind.Null)
                {
                    return Invalid(json, "its \"arguments\" is not an object");
                }
            }

            return new FunctionCallContent($"call_{++_callCount}_{Guid.NewGuid():N}"[..24], name.GetString()!, arguments);
        }
        catch (JsonException e)
        {
            return Invalid(json, e.Message);
        }
    }

    private static Dictionary<string, object?> ToDictionary(JsonElement element) =>
        element.ValueKind == JsonValueKind.Object
            ? element.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone())
            : throw new JsonException("the arguments are not a JSON object");

    private static ErrorContent Invalid(string json, string why) =>
        new($"The model's tool call is not valid: {why}.") { ErrorCode = "invalid_tool_call", Details = json };

    private static int PartialTagLength(string text)
    {
        for (int length = Math.Min(OpenTag.Length - 1, text.Length); length > 0; length--)
        {
            if (text.AsSpan(text.Length - length).SequenceEqual(OpenTag.AsSpan(0, length)))
            {
                return length;
            }
        }

        return 0;
    }
}
