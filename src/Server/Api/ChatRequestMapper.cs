using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Api;

/// <summary>How the answer is written back: with speech (and in which format) or text alone, streamed or whole.</summary>
internal sealed record ChatAnswerPlan(bool Speaks, string AudioFormat, bool Stream, bool IncludeUsage, string Model);

/// <summary>An OpenAI chat completion request as the <see cref="IChatClient"/>'s messages and options; every problem named by its field.</summary>
internal static class ChatRequestMapper
{
    // spokenAnswers: where an assistant turn's audio.id is looked up (the transcript of that earlier spoken answer).
    public static (List<ChatMessage> Messages, ChatOptions Options, ChatAnswerPlan Plan) Map(ChatCompletionRequest request, ServerLimits limits, string modelId, SpokenAnswers spokenAnswers)
    {
        var wires = request.Messages;
        if (wires is not { Count: > 0 })
        {
            throw ApiRequestException.Invalid("The request has no messages; send at least one user message.", "messages", "missing_required_parameter");
        }

        if (wires.Count > limits.MaxMessages)
        {
            throw ApiRequestException.TooLarge($"The request has {wires.Count} messages; this server takes at most {limits.MaxMessages} (MiniOmni:Limits:MaxMessages).", "messages", "too_many_messages");
        }

        if (request.N is not (null or 1))
        {
            throw ApiRequestException.Invalid($"n is {request.N}; Mini-Omni gives one answer per request.", "n");
        }

        bool speaks = false;
        foreach (string modality in request.Modalities ?? [])
        {
            speaks |= modality switch
            {
                "audio" => true,
                "text" => false,
                _ => throw ApiRequestException.Invalid($"The modality '{modality}' is not one Mini-Omni produces; ask for [\"text\"] or [\"text\", \"audio\"].", "modalities"),
            };
        }

        // Mini-Omni has one voice: any name, or a custom voice's {"id": ...}, gets it.
        if (request.Audio?.Voice is { } voice && voice.ValueKind is not (JsonValueKind.String or JsonValueKind.Null)
            && !(voice.ValueKind == JsonValueKind.Object && voice.TryGetProperty("id", out var voiceId) && voiceId.ValueKind == JsonValueKind.String))
        {
            throw ApiRequestException.Invalid("audio.voice must be a voice's name or {\"id\": \"...\"}.", "audio.voice");
        }

        string audioFormat = request.Audio?.Format?.ToLowerInvariant() ?? "wav";
        if (audioFormat is not ("wav" or "pcm16"))
        {
            throw ApiRequestException.Invalid($"audio.format '{request.Audio?.Format}' is not available; Mini-Omni speaks 24 kHz 16-bit PCM as 'wav' or 'pcm16'.", "audio.format");
        }

        int characters = 0;
        var messages = new List<ChatMessage>(wires.Count);
        for (int i = 0; i < wires.Count; i++)
        {
            messages.Add(ToMessage(wires[i], $"messages[{i}]", limits, spokenAnswers, ref characters));
        }

        if (characters > limits.MaxTextCharacters)
        {
            throw ApiRequestException.TooLarge($"The messages hold {characters} characters of text; this server takes at most {limits.MaxTextCharacters} (MiniOmni:Limits:MaxTextCharacters).", "messages", "too_much_text");
        }

        int? asked = request.MaxCompletionTokens ?? request.MaxTokens;
        if (asked is <= 0)
        {
            throw ApiRequestException.Invalid($"max_completion_tokens is {asked}; it must be at least 1.", request.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens");
        }

        var options = new ChatOptions
        {
            ModelId = modelId,
            // Unasked, the engine's default budget (within the model's context); the server's limit caps either way.
            MaxOutputTokens = asked is { } tokens ? Math.Min(tokens, limits.MaxAnswerTokens) : null,
            Temperature = request.Temperature,
            TopP = request.TopP,
            Seed = request.Seed,
            StopSequences = Stops(request.Stop),
        };
        options.WithMiniOmniOutput(speaks ? MiniOmniOutput.TextAndSpeech : MiniOmniOutput.Text);
        if (request.MiniomniMode is { } mode)
        {
            (options.AdditionalProperties ??= [])[MiniOmniChatOptions.ModeKey] = mode;
        }

        if (request.MiniomniEncoderMode is { } encoder)
        {
            (options.AdditionalProperties ??= [])[MiniOmniChatOptions.EncoderModeKey] = encoder;
        }

        options.ResponseFormat = ResponseFormat(request.ResponseFormat);
        ApplyTools(request, options);
        var plan = new ChatAnswerPlan(speaks, audioFormat, request.Stream, request.StreamOptions?.IncludeUsage == true, modelId);
        return (messages, options, plan);
    }

    private static ChatMessage ToMessage(ChatMessageWire wire, string at, ServerLimits limits, SpokenAnswers spokenAnswers, ref int characters)
    {
        var role = wire.Role switch
        {
            "system" or "developer" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            "tool" => ChatRole.Tool,
            _ => throw ApiRequestException.Invalid($"{at}.role is '{wire.Role}'; use system, developer, user, assistant or tool.", $"{at}.role"),
        };
        var contents = new List<AIContent>();
        if (role == ChatRole.Tool)
        {
            string callId = wire.ToolCallId ?? throw ApiRequestException.Invalid($"{at} is a tool result without tool_call_id.", $"{at}.tool_call_id", "missing_required_parameter");
            string result = TextOf(wire.Content, at, allowAudio: false, limits, contents, ref characters);
            return new ChatMessage(ChatRole.Tool, [new FunctionResultContent(callId, result)]);
        }

        TextOf(wire.Content, at, allowAudio: role == ChatRole.User, limits, contents, ref characters);
        if (wire.Audio is { } spoken)
        {
            if (role != ChatRole.Assistant)
            {
                throw ApiRequestException.Invalid($"{at} has audio.id, but only assistant messages refer to an earlier spoken answer.", $"{at}.audio");
            }

            string id = spoken.Id ?? throw ApiRequestException.Invalid($"{at}.audio has no id.", $"{at}.audio.id", "missing_required_parameter");
            string transcript = spokenAnswers.Find(id) ?? throw ApiRequestException.Invalid(
                $"{at}.audio.id '{id}' is not an answer this server gave, or it has expired (answers are kept {SpokenAnswers.Lifetime.TotalMinutes:0} minutes); send its transcript as content instead.",
                $"{at}.audio.id", "audio_not_found");
            if (contents.Count == 0)
            {
                characters += transcript.Length;
                contents.Add(new TextContent(transcript));
            }
        }

        for (int i = 0; i < (wire.ToolCalls?.Count ?? 0); i++)
        {
            var call = wire.ToolCalls![i];
            string where = $"{at}.tool_calls[{i}]";
            if (role != ChatRole.Assistant)
            {
                throw ApiRequestException.Invalid($"{at} has tool_calls, but only assistant messages make tool calls.", where);
            }

            string name = call.Function?.Name ?? throw ApiRequestException.Invalid($"{where} has no function name.", $"{where}.function.name", "missing_required_parameter");
            contents.Add(new FunctionCallContent(call.Id ?? $"call_{i}", name, Arguments(call.Function.Arguments, where)));
        }

        if (contents.Count == 0 && role == ChatRole.User)
        {
            throw ApiRequestException.Invalid($"{at} has neither text nor audio.", $"{at}.content");
        }

        return new ChatMessage(role, contents) { AuthorName = wire.Name };
    }

    // The message's text parts (returned joined), and for a user its audio parts, added to contents.
    private static string TextOf(JsonElement? content, string at, bool allowAudio, ServerLimits limits, List<AIContent> contents, ref int characters)
    {
        if (content is not { } element || element.ValueKind == JsonValueKind.Null)
        {
            return string.Empty;
        }

        if (element.ValueKind == JsonValueKind.String)
        {
            string text = element.GetString()!;
            characters += text.Length;
            contents.Add(new TextContent(text));
            return text;
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            throw ApiRequestException.Invalid($"{at}.content is a JSON {element.ValueKind}; give a string or an array of content parts.", $"{at}.content");
        }

        var joined = new StringBuilder();
        int index = 0;
        foreach (var part in element.EnumerateArray())
        {
            string where = $"{at}.content[{index++}]";
            string? type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            switch (type)
            {
                case "text" when part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String:
                    characters += text.GetString()!.Length;
                    joined.Append(text.GetString());
                    contents.Add(new TextContent(text.GetString()));
                    break;
                case "input_audio" when allowAudio:
                    contents.Add(AudioPart(part, where, limits));
                    break;
                case "input_audio":
                    throw ApiRequestException.Invalid($"{where} is audio; only user messages carry audio.", where);
                default:
                    throw ApiRequestException.Invalid(
                        $"{where} is {(type is null ? "not a content part with a type" : $"a '{type}' part")}; Mini-Omni reads text and hears audio: give 'text' or 'input_audio' parts.", where, "unsupported_content");
            }
        }

        return joined.ToString();
    }

    private static DataContent AudioPart(JsonElement part, string where, ServerLimits limits)
    {
        if (!part.TryGetProperty("input_audio", out var audio) || audio.ValueKind != JsonValueKind.Object
            || !audio.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.String)
        {
            throw ApiRequestException.Invalid($"{where} has no input_audio.data (base64 audio).", $"{where}.input_audio.data", "missing_required_parameter");
        }

        string? format = audio.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
        string mediaType = RequestAudio.MediaTypeOf(format)
            ?? throw ApiRequestException.Invalid($"{where}.input_audio.format is '{format}'; send wav, mp3, webm (Opus) or ogg (Opus).", $"{where}.input_audio.format", "unsupported_audio_format");
        byte[] bytes;
        try
        {
            bytes = data.GetBytesFromBase64();
        }
        catch (FormatException)
        {
            throw ApiRequestException.Invalid($"{where}.input_audio.data is not valid base64.", $"{where}.input_audio.data", "invalid_audio");
        }

        float[] samples = RequestAudio.DecodeQuestion(bytes, mediaType, $"{where}.input_audio ({format})", limits, $"{where}.input_audio.data");
        return RequestAudio.ToWav(samples, $"{where}.input_audio");
    }

    private static Dictionary<string, object?>? Arguments(string? json, string where)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw ApiRequestException.Invalid($"{where}.function.arguments is not a JSON object.", $"{where}.function.arguments");
            }

            return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        }
        catch (JsonException e)
        {
            throw ApiRequestException.Invalid($"{where}.function.arguments is not valid JSON: {e.Message}", $"{where}.function.arguments");
        }
    }

    private static ChatResponseFormat? ResponseFormat(JsonElement? format)
    {
        if (format is not { ValueKind: JsonValueKind.Object } element)
        {
            return format is null or { ValueKind: JsonValueKind.Null } ? null : throw ApiRequestException.Invalid("response_format must be an object with a type.", "response_format");
        }

        string? type = element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        switch (type)
        {
            case "text":
                return ChatResponseFormat.Text;
            case "json_object":
                return ChatResponseFormat.Json;
            case "json_schema":
                if (!element.TryGetProperty("json_schema", out var wrapper) || wrapper.ValueKind != JsonValueKind.Object
                    || !wrapper.TryGetProperty("schema", out var schema) || schema.ValueKind != JsonValueKind.Object)
                {
                    throw ApiRequestException.Invalid("response_format json_schema needs json_schema.schema (a JSON schema object).", "response_format.json_schema.schema", "missing_required_parameter");
                }

                string? name = wrapper.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                string? description = wrapper.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
                return ChatResponseFormat.ForJsonSchema(schema.Clone(), name, description);
            default:
                throw ApiRequestException.Invalid($"response_format type '{type}' is not text, json_object or json_schema.", "response_format.type");
        }
    }

    private static List<string>? Stops(JsonElement? stop) => stop switch
    {
        null => null,
        { ValueKind: JsonValueKind.Null } => null,
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        { ValueKind: JsonValueKind.Array } a when a.GetArrayLength() <= 4 && a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => [.. a.EnumerateArray().Select(e => e.GetString()!)],
        _ => throw ApiRequestException.Invalid("stop must be a string or an array of at most 4 strings.", "stop"),
    };

    private static void ApplyTools(ChatCompletionRequest request, ChatOptions options)
    {
        string? choice = request.ToolChoice is { ValueKind: JsonValueKind.String } c ? c.GetString() : null;
        if (request.Tools is not { Count: > 0 } tools || choice == "none")
        {
            return;
        }

        options.Tools = [];
        for (int i = 0; i < tools.Count; i++)
        {
            var tool = tools[i];
            if (tool.Type != "function" || tool.Function?.Name is not { Length: > 0 } name)
            {
                throw ApiRequestException.Invalid($"tools[{i}] is not a function with a name; Mini-Omni calls functions only.", $"tools[{i}]");
            }

            var schema = tool.Function.Parameters ?? JsonDocument.Parse("{\"type\":\"object\",\"properties\":{}}").RootElement;
            options.Tools.Add(AIFunctionFactory.CreateDeclaration(name, tool.Function.Description, schema));
        }

        options.ToolMode = choice switch
        {
            "required" => ChatToolMode.RequireAny,
            null when request.ToolChoice is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("function", out var f) && f.TryGetProperty("name", out var n) => ChatToolMode.RequireSpecific(n.GetString()!),
            _ => ChatToolMode.Auto,
        };
    }
}
