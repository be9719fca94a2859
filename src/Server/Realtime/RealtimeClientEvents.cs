using System.Text.Json;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK.Server.Realtime;

/// <summary>A client event the server refuses; it becomes an <c>error</c> event naming the event and the field, and the session goes on.</summary>
internal sealed class RealtimeProtocolException(string message, string code = "invalid_event", string? param = null) : Exception(message)
{
    public string Code { get; } = code;

    public string? Param { get; } = param;

    /// <summary>The refused client event's <c>event_id</c>, echoed in the error so the client can tell which request failed.</summary>
    public string? EventId { get; set; }
}

/// <summary>
/// OpenAI's Realtime client events (GA shape, as the official SDKs send them, or the beta's) read into Microsoft.Extensions.AI
/// realtime messages. The OpenAI session is updated field by field, so this keeps the session's options and merges each
/// update into them. A session update in the beta's shape switches the connection to the beta's events (<see cref="RealtimeProtocol"/>).
/// </summary>
internal sealed class RealtimeClientEvents(RealtimeSessionOptions initial, int maxAnswerTokens, RealtimeProtocol protocol)
{
    // Session fields only the beta has: a client that sends one speaks the beta.
    private static readonly string[] BetaSessionFields =
        ["modalities", "input_audio_format", "output_audio_format", "turn_detection", "voice", "input_audio_transcription", "max_response_output_tokens"];

    /// <summary>The session's options as the client has set them so far.</summary>
    public RealtimeSessionOptions Options { get; private set; } = initial;

    /// <summary>The message for one client event, or null for an event that needs no message.</summary>
    /// <exception cref="RealtimeProtocolException">The event is malformed or asks for what Mini-Omni cannot do.</exception>
    public RealtimeClientMessage Read(JsonElement root)
    {
        string type = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()!
            : throw new RealtimeProtocolException("The event has no \"type\"; every client event is a JSON object with a type.", "invalid_event", "type");
        string? eventId = root.TryGetProperty("event_id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        try
        {
            var message = Message(root, type);
            message.MessageId = eventId;
            return message;
        }
        catch (RealtimeProtocolException e)
        {
            e.EventId ??= eventId;
            throw;
        }
    }

    private RealtimeClientMessage Message(JsonElement root, string type) =>
        type switch
        {
            "session.update" => new SessionUpdateRealtimeClientMessage(MergeSession(Property(root, "session", type), transcriptionSession: false)),
            "transcription_session.update" => new SessionUpdateRealtimeClientMessage(MergeSession(Property(root, "session", type), transcriptionSession: true)),
            "input_audio_buffer.append" => new InputAudioBufferAppendRealtimeClientMessage(new DataContent(Base64(root, "audio", type), "audio/pcm")),
            "input_audio_buffer.commit" => new InputAudioBufferCommitRealtimeClientMessage(),
            "input_audio_buffer.clear" => new InputAudioBufferClearRealtimeClientMessage(),
            "conversation.item.create" => new CreateConversationItemRealtimeClientMessage(Item(Property(root, "item", type), "item")),
            "response.create" => Response(root.TryGetProperty("response", out var r) && r.ValueKind == JsonValueKind.Object ? r : default),
            "response.cancel" => new CancelResponseRealtimeClientMessage { ResponseId = root.TryGetProperty("response_id", out var rid) && rid.ValueKind == JsonValueKind.String ? rid.GetString() : null },
            "conversation.item.truncate" => new TruncateConversationItemRealtimeClientMessage
            {
                ItemId = String(root, "item_id", type),
                ContentIndex = root.TryGetProperty("content_index", out var index) && index.TryGetInt32(out int contentIndex) ? contentIndex : 0,
                AudioEnd = root.TryGetProperty("audio_end_ms", out var end) && end.TryGetInt64(out long ms) && ms >= 0
                    ? TimeSpan.FromMilliseconds(ms)
                    : throw new RealtimeProtocolException($"'{type}' needs \"audio_end_ms\", a whole number of milliseconds of 0 or more.", "invalid_value", "audio_end_ms"),
            },
            "conversation.item.retrieve" => new RetrieveConversationItemRealtimeClientMessage { ItemId = String(root, "item_id", type) },
            "conversation.item.delete" => new DeleteConversationItemRealtimeClientMessage { ItemId = String(root, "item_id", type) },
            "output_audio_buffer.clear" =>
                throw new RealtimeProtocolException($"'{type}' is for WebRTC and SIP connections, which play the audio themselves; over a WebSocket the client plays it, and stops it itself (then sends conversation.item.truncate).", "unsupported_event", "type"),
            _ => throw new RealtimeProtocolException(
                $"'{type}' is not a client event this server knows; it takes session.update (transcription_session.update), input_audio_buffer.append/commit/clear, " +
                "conversation.item.create/truncate/retrieve/delete and response.create/cancel.", "unsupported_event", "type"),
        };

    /// <summary>Records that the session took <paramref name="options"/> (its update succeeded).</summary>
    public void Accept(RealtimeSessionOptions options) => Options = options;

    private RealtimeSessionOptions MergeSession(JsonElement session, bool transcriptionSession)
    {
        if (transcriptionSession || BetaSessionFields.Any(field => session.TryGetProperty(field, out _)))
        {
            protocol.SwitchToBeta();
        }

        var current = Options;
        var kind = transcriptionSession ? RealtimeSessionKind.Transcription : current.SessionKind;
        if (session.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String)
        {
            kind = type.GetString() switch
            {
                "realtime" => RealtimeSessionKind.Conversation,
                "transcription" => RealtimeSessionKind.Transcription,
                var other => throw new RealtimeProtocolException($"session.type '{other}' is not 'realtime' or 'transcription'.", "invalid_value", "session.type"),
            };
        }

        var input = session.TryGetProperty("audio", out var audio) && audio.ValueKind == JsonValueKind.Object && audio.TryGetProperty("input", out var i) && i.ValueKind == JsonValueKind.Object ? i : default;
        var output = audio.ValueKind == JsonValueKind.Object && audio.TryGetProperty("output", out var o) && o.ValueKind == JsonValueKind.Object ? o : default;
        var inputFormat = input.ValueKind == JsonValueKind.Object && input.TryGetProperty("format", out var f) ? Format(f, "session.audio.input.format")
            : session.TryGetProperty("input_audio_format", out var betaInput) ? Format(betaInput, "session.input_audio_format")
            : current.InputAudioFormat;
        var outputFormat = output.ValueKind == JsonValueKind.Object && output.TryGetProperty("format", out var of) ? Format(of, "session.audio.output.format")
            : session.TryGetProperty("output_audio_format", out var betaOutput) ? Format(betaOutput, "session.output_audio_format")
            : current.OutputAudioFormat;
        var detection = current.VoiceActivityDetection;
        if (input.ValueKind == JsonValueKind.Object && input.TryGetProperty("turn_detection", out var turn))
        {
            detection = TurnDetection(turn);
        }
        else if (session.TryGetProperty("turn_detection", out var betaTurn))
        {
            detection = TurnDetection(betaTurn);
        }

        // null turns transcription off; an object turns it on.
        var transcription = current.TranscriptionOptions;
        if (input.ValueKind == JsonValueKind.Object && input.TryGetProperty("transcription", out var transcribe))
        {
            transcription = Transcription(transcribe);
        }
        else if (session.TryGetProperty("input_audio_transcription", out var betaTranscribe))
        {
            transcription = Transcription(betaTranscribe);
        }

        var outputModalities = session.TryGetProperty("output_modalities", out var modalities) ? Strings(modalities, "session.output_modalities")
            : session.TryGetProperty("modalities", out var betaModalities) ? Strings(betaModalities, "session.modalities")
            : current.OutputModalities;
        string? voice = output.ValueKind == JsonValueKind.Object && output.TryGetProperty("voice", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()
            : session.TryGetProperty("voice", out var betaVoice) && betaVoice.ValueKind == JsonValueKind.String ? betaVoice.GetString()
            : current.Voice;
        var maxOutputTokens = session.TryGetProperty("max_output_tokens", out var max) ? MaxTokens(max, "session.max_output_tokens")
            : session.TryGetProperty("max_response_output_tokens", out var betaMax) ? MaxTokens(betaMax, "session.max_response_output_tokens")
            : current.MaxOutputTokens;

        return new RealtimeSessionOptions
        {
            SessionKind = kind,
            Model = session.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String ? model.GetString() : current.Model,
            Instructions = session.TryGetProperty("instructions", out var instructions) ? (instructions.ValueKind == JsonValueKind.String ? instructions.GetString() : null) : current.Instructions,
            OutputModalities = outputModalities,
            MaxOutputTokens = maxOutputTokens,
            InputAudioFormat = inputFormat,
            OutputAudioFormat = outputFormat,
            Voice = voice,
            VoiceActivityDetection = detection,
            TranscriptionOptions = transcription,
            Tools = session.TryGetProperty("tools", out var tools) ? RealtimeToolEvents.ReadTools(tools, "session.tools") : current.Tools,
            ToolMode = session.TryGetProperty("tool_choice", out var choice) ? RealtimeToolEvents.ReadToolChoice(choice, "session.tool_choice") : current.ToolMode,
        };
    }

    // session.audio.input.transcription (the beta's input_audio_transcription): null turns transcribing spoken turns off.
    private static TranscriptionOptions Transcription(JsonElement transcription)
    {
        if (transcription.ValueKind == JsonValueKind.Null)
        {
            return new MiniOmniTranscriptionOptions { Enabled = false };
        }

        if (transcription.ValueKind != JsonValueKind.Object)
        {
            throw new RealtimeProtocolException("The session's transcription must be an object (for example {\"model\":\"mini-omni\"}) or null to turn it off.", "invalid_value", "session.audio.input.transcription");
        }

        return new MiniOmniTranscriptionOptions
        {
            Enabled = true,
            ModelId = transcription.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String ? model.GetString() : null,
            SpeechLanguage = transcription.TryGetProperty("language", out var language) && language.ValueKind == JsonValueKind.String ? language.GetString() : null,
            Prompt = transcription.TryGetProperty("prompt", out var prompt) && prompt.ValueKind == JsonValueKind.String ? prompt.GetString() : null,
        };
    }

    private CreateResponseRealtimeClientMessage Response(JsonElement response)
    {
        var message = new CreateResponseRealtimeClientMessage();
        if (response.ValueKind != JsonValueKind.Object)
        {
            return message;
        }

        if (response.TryGetProperty("tools", out var tools))
        {
            message.Tools = RealtimeToolEvents.ReadTools(tools, "response.tools");
        }

        if (response.TryGetProperty("tool_choice", out var choice))
        {
            message.ToolMode = RealtimeToolEvents.ReadToolChoice(choice, "response.tool_choice");
        }

        if (response.TryGetProperty("output_modalities", out var modalities))
        {
            message.OutputModalities = Strings(modalities, "response.output_modalities");
        }
        else if (response.TryGetProperty("modalities", out var betaModalities))
        {
            message.OutputModalities = Strings(betaModalities, "response.modalities");
        }

        if (response.TryGetProperty("instructions", out var instructions) && instructions.ValueKind == JsonValueKind.String)
        {
            message.Instructions = instructions.GetString();
        }

        if (response.TryGetProperty("max_output_tokens", out var max))
        {
            message.MaxOutputTokens = MaxTokens(max, "response.max_output_tokens");
        }
        else if (response.TryGetProperty("max_response_output_tokens", out var betaMax))
        {
            message.MaxOutputTokens = MaxTokens(betaMax, "response.max_response_output_tokens");
        }

        if (response.TryGetProperty("conversation", out var conversation) && conversation.ValueKind == JsonValueKind.String && conversation.GetString() == "none")
        {
            message.ExcludeFromConversation = true;
        }

        if (response.TryGetProperty("input", out var items) && items.ValueKind == JsonValueKind.Array)
        {
            int index = 0;
            message.Items = [.. items.EnumerateArray().Select(item => Item(item, $"response.input[{index++}]"))];
        }

        if (response.TryGetProperty("audio", out var audio) && audio.ValueKind == JsonValueKind.Object && audio.TryGetProperty("output", out var output)
            && output.ValueKind == JsonValueKind.Object && output.TryGetProperty("format", out var format))
        {
            message.OutputAudioOptions = Format(format, "response.audio.output.format");
        }
        else if (response.TryGetProperty("output_audio_format", out var betaFormat))
        {
            message.OutputAudioOptions = Format(betaFormat, "response.output_audio_format");
        }

        return message;
    }

    private RealtimeConversationItem Item(JsonElement item, string where)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw new RealtimeProtocolException($"{where} is not an object.", "invalid_value", where);
        }

        string? type = item.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "message";
        if (type is "function_call" or "function_call_output")
        {
            return RealtimeToolEvents.ReadItem(item, type, where);
        }

        if (type != "message")
        {
            throw new RealtimeProtocolException($"{where}.type is '{type}'; Mini-Omni's conversations hold messages, function calls and their outputs.", "unsupported_value", $"{where}.type");
        }

        var role = (item.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null) switch
        {
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            "system" => ChatRole.System,
            var other => throw new RealtimeProtocolException($"{where}.role is '{other}'; use user, assistant or system.", "invalid_value", $"{where}.role"),
        };
        var contents = new List<AIContent>();
        if (item.TryGetProperty("content", out var parts) && parts.ValueKind == JsonValueKind.Array)
        {
            int index = 0;
            foreach (var part in parts.EnumerateArray())
            {
                string at = $"{where}.content[{index++}]";
                string? partType = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var pt) && pt.ValueKind == JsonValueKind.String ? pt.GetString() : null;
                switch (partType)
                {
                    case "input_text" or "text" or "output_text":
                        contents.Add(new TextContent(part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String ? text.GetString() : string.Empty));
                        break;
                    case "input_audio":
                        contents.Add(new DataContent(Base64(part, "audio", at), "audio/pcm"));
                        if (part.TryGetProperty("transcript", out var transcript) && transcript.ValueKind == JsonValueKind.String && transcript.GetString() is { Length: > 0 } said)
                        {
                            contents.Add(new TextContent(said));
                        }

                        break;
                    case "output_audio":
                        if (part.TryGetProperty("transcript", out var heard) && heard.ValueKind == JsonValueKind.String)
                        {
                            contents.Add(new TextContent(heard.GetString()));
                        }

                        break;
                    default:
                        throw new RealtimeProtocolException($"{at} is {(partType is null ? "a part without a type" : $"a '{partType}' part")}; Mini-Omni reads text and hears audio.", "unsupported_value", at);
                }
            }
        }

        return new RealtimeConversationItem(contents, item.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null, role);
    }

    private static RealtimeAudioFormat? Format(JsonElement format, string where)
    {
        if (format.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        // The GA shape {"type":"audio/pcm","rate":24000} or {"type":"audio/pcmu"}, or the beta's "pcm16", "g711_ulaw", "g711_alaw".
        string? type = format.ValueKind == JsonValueKind.String ? format.GetString()
            : format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        int rate = format.ValueKind == JsonValueKind.Object && format.TryGetProperty("rate", out var r) && r.TryGetInt32(out int given) ? given : 24000;
        return type switch
        {
            "audio/pcm" or "pcm16" => new RealtimeAudioFormat("audio/pcm", rate),
            "audio/pcmu" or "g711_ulaw" => new RealtimeAudioFormat("audio/pcmu", 8000),
            "audio/pcma" or "g711_alaw" => new RealtimeAudioFormat("audio/pcma", 8000),
            _ => throw new RealtimeProtocolException(
                $"{where} is '{type}'; Mini-Omni hears and speaks 16-bit PCM ('audio/pcm', the beta's 'pcm16') and G.711 ('audio/pcmu', 'audio/pcma', the beta's 'g711_ulaw', 'g711_alaw').",
                "unsupported_audio_format", where),
        };
    }

    private static VoiceActivityDetectionOptions TurnDetection(JsonElement turn)
    {
        if (turn.ValueKind == JsonValueKind.Null)
        {
            return new VoiceActivityDetectionOptions { Enabled = false };
        }

        string? type = turn.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "server_vad";
        if (type is not ("server_vad" or "semantic_vad"))
        {
            throw new RealtimeProtocolException($"session.audio.input.turn_detection.type is '{type}'; use server_vad (or null to commit turns yourself).", "invalid_value", "session.audio.input.turn_detection.type");
        }

        // OpenAI's threshold (0 to 1, default 0.5) is a speech probability; here it moves the energy threshold 20 dB either way of -40 dBFS.
        double threshold = turn.TryGetProperty("threshold", out var th) && th.TryGetDouble(out double value) ? value : 0.5;
        if (threshold is < 0 or > 1)
        {
            throw new RealtimeProtocolException($"turn_detection.threshold is {threshold}; it must be 0 to 1.", "invalid_value", "session.audio.input.turn_detection.threshold");
        }

        return new MiniOmniVoiceActivityDetectionOptions
        {
            Enabled = true,
            ThresholdDb = -40 + (threshold - 0.5) * 40,
            PrefixPadding = TimeSpan.FromMilliseconds(Int(turn, "prefix_padding_ms", 300)),
            SilenceDuration = TimeSpan.FromMilliseconds(Int(turn, "silence_duration_ms", 500)),
            CreateResponse = Bool(turn, "create_response", true),
            AllowInterruption = Bool(turn, "interrupt_response", true),
        };
    }

    private int? MaxTokens(JsonElement max, string where) => max.ValueKind switch
    {
        // "inf" and null: the engine's default budget, within the model's context (the server caps it at its limit).
        JsonValueKind.String when max.GetString() == "inf" => null,
        JsonValueKind.Number when max.TryGetInt32(out int value) && value >= 1 => Math.Min(value, maxAnswerTokens),
        JsonValueKind.Null => null,
        _ => throw new RealtimeProtocolException($"{where} must be a whole number of at least 1, or \"inf\".", "invalid_value", where),
    };

    private static List<string> Strings(JsonElement array, string where) =>
        array.ValueKind == JsonValueKind.Array && array.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String)
            ? [.. array.EnumerateArray().Select(e => e.GetString()!)]
            : throw new RealtimeProtocolException($"{where} must be an array of strings.", "invalid_value", where);

    private static string String(JsonElement root, string name, string type) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : throw new RealtimeProtocolException($"'{type}' has no \"{name}\".", "missing_required_parameter", name);

    private static JsonElement Property(JsonElement root, string name, string type) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Object
            ? value
            : throw new RealtimeProtocolException($"'{type}' has no \"{name}\" object.", "missing_required_parameter", name);

    private static byte[] Base64(JsonElement element, string name, string where)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
        {
            throw new RealtimeProtocolException($"'{where}' has no \"{name}\" (base64 audio).", "missing_required_parameter", name);
        }

        try
        {
            return value.GetBytesFromBase64();
        }
        catch (FormatException)
        {
            throw new RealtimeProtocolException($"\"{name}\" of '{where}' is not valid base64.", "invalid_audio", name);
        }
    }

    private static int Int(JsonElement element, string name, int fallback) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int parsed) ? parsed : fallback;

    private static bool Bool(JsonElement element, string name, bool fallback) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : fallback;
}
