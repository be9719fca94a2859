using System.Text.Json;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK.Server.Realtime;

/// <summary>
/// The function-calling parts of OpenAI's Realtime events (GA shape): <c>tools</c> and <c>tool_choice</c> of a session or
/// response, <c>function_call</c> and <c>function_call_output</c> items, read into Microsoft.Extensions.AI's function
/// declarations, tool modes and call and result contents, and written back as the official SDKs read them.
/// </summary>
internal static class RealtimeToolEvents
{
    // Arguments and results go out as compact JSON, as OpenAI writes them.
    private static readonly JsonSerializerOptions Compact = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    /// <summary>The functions of a <c>tools</c> array; each is <c>{"type":"function","name":...,"description":...,"parameters":{...}}</c>.</summary>
    public static List<AITool> ReadTools(JsonElement tools, string where)
    {
        if (tools.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (tools.ValueKind != JsonValueKind.Array)
        {
            throw new RealtimeProtocolException($"{where} must be an array of function tools.", "invalid_value", where);
        }

        var declarations = new List<AITool>();
        int index = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            string at = $"{where}[{index++}]";
            string? type = tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            if (type != "function")
            {
                throw new RealtimeProtocolException($"{at} is {(type is null ? "not a typed tool" : $"a '{type}' tool")}; Mini-Omni calls functions (type \"function\"), not MCP servers.", "unsupported_value", $"{at}.type");
            }

            string name = tool.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(n.GetString())
                ? n.GetString()!
                : throw new RealtimeProtocolException($"{at} has no \"name\".", "missing_required_parameter", $"{at}.name");
            string? description = tool.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
            JsonElement schema = tool.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object
                ? p.Clone()
                : JsonSerializer.SerializeToElement(new Dictionary<string, object> { ["type"] = "object", ["properties"] = new Dictionary<string, object>() });
            declarations.Add(AIFunctionFactory.CreateDeclaration(name, description ?? string.Empty, schema));
        }

        return declarations;
    }

    /// <summary>A <c>tool_choice</c>: "auto", "none", "required", or <c>{"type":"function","name":...}</c>.</summary>
    public static ChatToolMode? ReadToolChoice(JsonElement choice, string where) => choice.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => choice.GetString() switch
        {
            "auto" => ChatToolMode.Auto,
            "none" => ChatToolMode.None,
            "required" => ChatToolMode.RequireAny,
            var other => throw new RealtimeProtocolException($"{where} is '{other}'; use auto, none, required or {{\"type\":\"function\",\"name\":...}}.", "invalid_value", where),
        },
        JsonValueKind.Object when choice.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "function" =>
            choice.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(name.GetString())
                ? ChatToolMode.RequireSpecific(name.GetString()!)
                : throw new RealtimeProtocolException($"{where} names no function.", "missing_required_parameter", $"{where}.name"),
        _ => throw new RealtimeProtocolException($"{where} must be auto, none, required or {{\"type\":\"function\",\"name\":...}}; Mini-Omni calls functions only.", "invalid_value", where),
    };

    /// <summary>A <c>function_call</c> item (a client replaying a call) or a <c>function_call_output</c> item (a function's result).</summary>
    public static RealtimeConversationItem ReadItem(JsonElement item, string type, string where)
    {
        string callId = item.TryGetProperty("call_id", out var c) && c.ValueKind == JsonValueKind.String && !string.IsNullOrEmpty(c.GetString())
            ? c.GetString()!
            : throw new RealtimeProtocolException($"{where} ({type}) has no \"call_id\".", "missing_required_parameter", $"{where}.call_id");
        string? id = item.TryGetProperty("id", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString() : null;
        if (type == "function_call_output")
        {
            string output = item.TryGetProperty("output", out var o) && o.ValueKind == JsonValueKind.String
                ? o.GetString()!
                : throw new RealtimeProtocolException($"{where} (function_call_output) has no \"output\" string.", "missing_required_parameter", $"{where}.output");
            return new RealtimeConversationItem([new FunctionResultContent(callId, output)], id);
        }

        string name = item.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(n.GetString())
            ? n.GetString()!
            : throw new RealtimeProtocolException($"{where} (function_call) has no \"name\".", "missing_required_parameter", $"{where}.name");
        Dictionary<string, object?>? arguments = null;
        if (item.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(a.GetString()))
        {
            try
            {
                using var parsed = JsonDocument.Parse(a.GetString()!);
                arguments = parsed.RootElement.ValueKind == JsonValueKind.Object
                    ? parsed.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone())
                    : throw new RealtimeProtocolException($"{where}.arguments is not a JSON object.", "invalid_value", $"{where}.arguments");
            }
            catch (JsonException e)
            {
                throw new RealtimeProtocolException($"{where}.arguments is not valid JSON: {e.Message}", "invalid_value", $"{where}.arguments");
            }
        }

        return new RealtimeConversationItem([new FunctionCallContent(callId, name, arguments)], id, ChatRole.Assistant);
    }

    /// <summary>Whether <paramref name="item"/> is a function call or a function's result (an item of its own, not a message).</summary>
    public static bool IsToolItem(RealtimeConversationItem? item) =>
        item?.Contents is { Count: > 0 } contents && contents[0] is FunctionCallContent or FunctionResultContent;

    /// <summary>The call <paramref name="item"/> holds, if it is a function call item.</summary>
    public static FunctionCallContent? CallOf(RealtimeConversationItem? item) =>
        item?.Contents is { Count: > 0 } contents ? contents[0] as FunctionCallContent : null;

    /// <summary>A call's arguments as the wire carries them: a JSON object in a string.</summary>
    public static string ArgumentsOf(FunctionCallContent call) =>
        JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), Compact);

    /// <summary>The body (inside its object) of a <c>function_call</c> or <c>function_call_output</c> item.</summary>
    public static void WriteItemBody(Utf8JsonWriter w, string? id, RealtimeConversationItem item, string status, bool withArguments = true)
    {
        if (id is null)
        {
            w.WriteNull("id");
        }
        else
        {
            w.WriteString("id", id);
        }

        w.WriteString("object", "realtime.item");
        switch (item.Contents[0])
        {
            case FunctionCallContent call:
                w.WriteString("type", "function_call");
                w.WriteString("status", status);
                w.WriteString("call_id", call.CallId);
                w.WriteString("name", call.Name);
                w.WriteString("arguments", withArguments ? ArgumentsOf(call) : string.Empty);
                break;
            case FunctionResultContent result:
                w.WriteString("type", "function_call_output");
                w.WriteString("status", status);
                w.WriteString("call_id", result.CallId);
                w.WriteString("output", result.Result switch
                {
                    null => string.Empty,
                    string text => text,
                    JsonElement { ValueKind: JsonValueKind.String } text => text.GetString(),
                    var other => JsonSerializer.Serialize(other, Compact),
                });
                break;
        }
    }

    /// <summary>A session's <c>tools</c> and <c>tool_choice</c>, as session.created and session.updated show them.</summary>
    public static void WriteSessionTools(Utf8JsonWriter w, RealtimeSessionOptions options)
    {
        w.WriteStartArray("tools");
        foreach (var tool in options.Tools?.OfType<AIFunctionDeclaration>() ?? [])
        {
            w.WriteStartObject();
            w.WriteString("type", "function");
            w.WriteString("name", tool.Name);
            w.WriteString("description", tool.Description);
            w.WritePropertyName("parameters");
            tool.JsonSchema.WriteTo(w);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        switch (options.ToolMode)
        {
            case NoneChatToolMode:
                w.WriteString("tool_choice", "none");
                break;
            case RequiredChatToolMode { RequiredFunctionName: { } name }:
                w.WriteStartObject("tool_choice");
                w.WriteString("type", "function");
                w.WriteString("name", name);
                w.WriteEndObject();
                break;
            case RequiredChatToolMode:
                w.WriteString("tool_choice", "required");
                break;
            default:
                w.WriteString("tool_choice", "auto");
                break;
        }
    }
}
