using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Realtime;

/// <summary>
/// Microsoft.Extensions.AI realtime server messages written as OpenAI's Realtime server events, in the GA shape or the
/// beta's (<see cref="RealtimeProtocol"/>), as the official SDKs read them: one message may make several events (an
/// answer's item is announced, then its content part). Keeps what it needs per response (its modality, its item, its
/// measurement). One per connection; not thread-safe.
/// </summary>
internal sealed class RealtimeServerEvents(ServerMetrics metrics, int outputSampleRate, RealtimeProtocol protocol)
{
    private readonly Dictionary<string, ResponseState> _responses = [];
    private int _nextEvent;

    /// <summary>Ends the measurements of responses that never finished (the connection closed).</summary>
    public void Abandon()
    {
        foreach (var state in _responses.Values)
        {
            state.Measurement.End("cancelled");
            state.Measurement.Dispose();
        }

        _responses.Clear();
    }

    /// <summary>The session.created or session.updated event for <paramref name="options"/>, in the connection's version.</summary>
    public byte[] Session(string type, string sessionId, RealtimeSessionOptions options) =>
        protocol.Beta ? BetaSession(type, sessionId, options) : Write(type, w =>
    {
        w.WriteStartObject("session");
        w.WriteString("object", "realtime.session");
        w.WriteString("id", sessionId);
        w.WriteString("type", options.SessionKind == RealtimeSessionKind.Transcription ? "transcription" : "realtime");
        w.WriteString("model", options.Model ?? "mini-omni");
        w.WriteStartArray("output_modalities");
        foreach (string modality in options.OutputModalities ?? ["audio"])
        {
            w.WriteStringValue(modality);
        }

        w.WriteEndArray();
        w.WriteString("instructions", options.Instructions ?? string.Empty);
        if (options.MaxOutputTokens is { } max)
        {
            w.WriteNumber("max_output_tokens", max);
        }
        else
        {
            w.WriteString("max_output_tokens", "inf");
        }

        RealtimeToolEvents.WriteSessionTools(w, options);
        w.WriteStartObject("audio");
        w.WriteStartObject("input");
        WriteFormat(w, options.InputAudioFormat ?? new RealtimeAudioFormat("audio/pcm", 24000));
        WriteTranscription(w, "transcription", options);
        WriteTurnDetection(w, options);
        w.WriteEndObject();
        w.WriteStartObject("output");
        WriteFormat(w, options.OutputAudioFormat ?? new RealtimeAudioFormat("audio/pcm", 24000));
        w.WriteString("voice", options.Voice ?? "mini-omni");
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
    });

    /// <summary>The transcription_session.updated event of a beta client's transcription session.</summary>
    public byte[] TranscriptionSession(string sessionId, RealtimeSessionOptions options) => Write("transcription_session.updated", w =>
    {
        w.WriteStartObject("session");
        w.WriteString("object", "realtime.transcription_session");
        w.WriteString("id", sessionId);
        w.WriteStartArray("modalities");
        w.WriteStringValue("text");
        w.WriteEndArray();
        w.WriteString("input_audio_format", BetaFormat(options.InputAudioFormat));
        WriteTranscription(w, "input_audio_transcription", options);
        WriteTurnDetection(w, options);
        w.WriteEndObject();
    });

    /// <summary>An error event.</summary>
    public byte[] Error(string message, string code, string? param = null, string? eventId = null, string type = "invalid_request_error") => Write("error", w =>
    {
        w.WriteStartObject("error");
        w.WriteString("type", type);
        w.WriteString("code", code);
        w.WriteString("message", message);
        WriteOptional(w, "param", param);
        WriteOptional(w, "event_id", eventId);
        w.WriteEndObject();
    });

    /// <summary>The events for <paramref name="message"/>.</summary>
    public IEnumerable<byte[]> From(RealtimeServerMessage message)
    {
        var type = message.Type;
        switch (message)
        {
            case InputSpeechRealtimeServerMessage speech when type == MiniOmniRealtimeServerMessageTypes.InputSpeechStarted:
                yield return Write("input_audio_buffer.speech_started", w =>
                {
                    w.WriteNumber("audio_start_ms", (long)speech.AudioPosition.TotalMilliseconds);
                    WriteOptional(w, "item_id", speech.ItemId);
                });
                break;
            case InputSpeechRealtimeServerMessage speech when type == MiniOmniRealtimeServerMessageTypes.InputSpeechStopped:
                yield return Write("input_audio_buffer.speech_stopped", w =>
                {
                    w.WriteNumber("audio_end_ms", (long)speech.AudioPosition.TotalMilliseconds);
                    WriteOptional(w, "item_id", speech.ItemId);
                });
                break;
            case InputSpeechRealtimeServerMessage speech when type == MiniOmniRealtimeServerMessageTypes.InputAudioCommitted:
                yield return Write("input_audio_buffer.committed", w =>
                {
                    WriteOptional(w, "previous_item_id", speech.PreviousItemId);
                    WriteOptional(w, "item_id", speech.ItemId);
                });
                break;
            case InputSpeechRealtimeServerMessage when type == MiniOmniRealtimeServerMessageTypes.InputAudioCleared:
                yield return Write("input_audio_buffer.cleared", _ => { });
                break;
            case ResponseOutputItemRealtimeServerMessage added when type == RealtimeServerMessageType.ConversationItemAdded:
                // A turn is added whole; an answer is added in progress, and done when it ends.
                foreach (string name in DetailsOf(added.Item).Status == "in_progress" ? ["conversation.item.added"] : new[] { "conversation.item.added", "conversation.item.done" })
                {
                    if (WriteConversationItem(name, added.Item) is { } e)
                    {
                        yield return e;
                    }
                }

                break;
            case ResponseOutputItemRealtimeServerMessage itemDone when type == RealtimeServerMessageType.ConversationItemDone:
                if (WriteConversationItem("conversation.item.done", itemDone.Item) is { } doneEvent)
                {
                    yield return doneEvent;
                }

                break;
            case ResponseOutputItemRealtimeServerMessage retrieved when type == MiniOmniRealtimeServerMessageTypes.ConversationItemRetrieved:
                yield return Write("conversation.item.retrieved", w => WriteItem(w, "item", retrieved.Item));
                break;
            case ConversationItemDeletedRealtimeServerMessage deleted:
                yield return Write("conversation.item.deleted", w => WriteOptional(w, "item_id", deleted.ItemId));
                break;
            case ResponseCreatedRealtimeServerMessage created when type == RealtimeServerMessageType.ResponseCreated:
                var state = new ResponseState(created.ResponseId ?? "resp", created.OutputModalities?.Contains("audio") != false, metrics.StartAnswer("realtime"))
                {
                    OutputRate = created.OutputAudioOptions?.SampleRate ?? outputSampleRate,
                    BytesPerSample = created.OutputAudioOptions?.MediaType is "audio/pcmu" or "audio/pcma" ? 1 : 2,
                    OutputFormat = created.OutputAudioOptions,
                };
                _responses[state.Id] = state;
                yield return Write("response.created", w => WriteResponse(w, state, "in_progress", created));
                break;
            case ResponseOutputItemRealtimeServerMessage call when RealtimeToolEvents.CallOf(call.Item) is not null
                && (type == RealtimeServerMessageType.ResponseOutputItemAdded || type == RealtimeServerMessageType.ResponseOutputItemDone):
                foreach (byte[] e in FunctionCall(call))
                {
                    yield return e;
                }

                break;
            case ResponseOutputItemRealtimeServerMessage item when type == RealtimeServerMessageType.ResponseOutputItemAdded:
                var adding = StateOf(item.ResponseId);
                adding.ItemId = item.Item?.Id;
                yield return Write("response.output_item.added", w =>
                {
                    w.WriteString("response_id", adding.Id);
                    w.WriteNumber("output_index", item.OutputIndex ?? 0);
                    WriteItem(w, "item", item.Item);
                });
                yield return Write("response.content_part.added", w =>
                {
                    WriteIds(w, adding);
                    WritePart(w, adding.Speaks, string.Empty);
                });
                break;
            case OutputTextAudioRealtimeServerMessage output:
                foreach (byte[] e in Output(output))
                {
                    yield return e;
                }

                break;
            case ResponseOutputItemRealtimeServerMessage item when type == RealtimeServerMessageType.ResponseOutputItemDone:
                var done = StateOf(item.ResponseId);
                done.Said = string.Concat(item.Item?.Contents?.OfType<TextContent>().Select(c => c.Text) ?? []);
                done.ItemStatus = DetailsOf(item.Item).Status;
                yield return Write("response.content_part.done", w =>
                {
                    WriteIds(w, done);
                    WritePart(w, done.Speaks, done.Said);
                });
                yield return Write("response.output_item.done", w =>
                {
                    w.WriteString("response_id", done.Id);
                    w.WriteNumber("output_index", item.OutputIndex ?? 0);
                    WriteItem(w, "item", item.Item);
                });
                break;
            case ResponseCreatedRealtimeServerMessage finished when type == RealtimeServerMessageType.ResponseDone:
                var last = StateOf(finished.ResponseId);
                _responses.Remove(last.Id);
                last.Measurement.Usage(finished.Usage);
                last.Measurement.End(finished.Status ?? "completed");
                last.Measurement.Dispose();
                yield return Write("response.done", w => WriteResponse(w, last, finished.Status ?? "completed", finished));
                break;
            case InputAudioTranscriptionRealtimeServerMessage transcription:
                foreach (byte[] e in Transcription(transcription))
                {
                    yield return e;
                }

                break;
            case AnswerTruncatedRealtimeServerMessage truncated:
                yield return Write("conversation.item.truncated", w =>
                {
                    WriteOptional(w, "item_id", truncated.ItemId);
                    w.WriteNumber("content_index", truncated.ContentIndex);
                    w.WriteNumber("audio_end_ms", (long)truncated.AudioEnd.TotalMilliseconds);
                });
                break;
            case ErrorRealtimeServerMessage error:
                yield return Error(error.Error?.Message ?? "The session failed.", error.Error?.ErrorCode ?? "error", eventId: error.OriginatingMessageId,
                    type: error.Error?.ErrorCode is "response_failed" or "transcription_failed" or "invalid_tool_call" ? "server_error" : "invalid_request_error");
                break;
        }
    }

    // A call the model made: its item announced with the function's name, then (the call being whole when it is done) its
    // arguments as one delta, their done event, and the item's done event; the call is listed in its response's output.
    private IEnumerable<byte[]> FunctionCall(ResponseOutputItemRealtimeServerMessage message)
    {
        var state = StateOf(message.ResponseId);
        var item = message.Item!;
        var call = RealtimeToolEvents.CallOf(item)!;
        int index = message.OutputIndex ?? 0;
        if (message.Type == RealtimeServerMessageType.ResponseOutputItemAdded)
        {
            yield return Write("response.output_item.added", w =>
            {
                w.WriteString("response_id", state.Id);
                w.WriteNumber("output_index", index);
                w.WriteStartObject("item");
                RealtimeToolEvents.WriteItemBody(w, item.Id, item, "in_progress", withArguments: false);
                w.WriteEndObject();
            });
            yield break;
        }

        state.Calls.Add(item);
        string arguments = RealtimeToolEvents.ArgumentsOf(call);
        void WriteIds(Utf8JsonWriter w)
        {
            w.WriteString("response_id", state.Id);
            WriteOptional(w, "item_id", item.Id);
            w.WriteNumber("output_index", index);
            w.WriteString("call_id", call.CallId);
        }

        yield return Write("response.function_call_arguments.delta", w =>
        {
            WriteIds(w);
            w.WriteString("delta", arguments);
        });
        yield return Write("response.function_call_arguments.done", w =>
        {
            WriteIds(w);
            w.WriteString("name", call.Name);
            w.WriteString("arguments", arguments);
        });
        yield return Write("response.output_item.done", w =>
        {
            w.WriteString("response_id", state.Id);
            w.WriteNumber("output_index", index);
            w.WriteStartObject("item");
            RealtimeToolEvents.WriteItemBody(w, item.Id, item, "completed");
            w.WriteEndObject();
        });
    }

    private IEnumerable<byte[]> Output(OutputTextAudioRealtimeServerMessage output)
    {
        var state = StateOf(output.ResponseId);
        var type = output.Type;
        if (type == RealtimeServerMessageType.OutputAudioDelta)
        {
            // The payload is base64 already: its decoded length is what was spoken.
            int bytes = (output.Audio?.Length ?? 0) / 4 * 3;
            state.Measurement.Audio(bytes / state.BytesPerSample, state.OutputRate);
            yield return Write("response.output_audio.delta", w =>
            {
                WriteIds(w, state);
                w.WriteString("delta", output.Audio);
            });
        }
        else if (type == RealtimeServerMessageType.OutputAudioTranscriptionDelta)
        {
            yield return Write("response.output_audio_transcript.delta", w =>
            {
                WriteIds(w, state);
                w.WriteString("delta", output.Text);
            });
        }
        else if (type == RealtimeServerMessageType.OutputTextDelta)
        {
            yield return Write("response.output_text.delta", w =>
            {
                WriteIds(w, state);
                w.WriteString("delta", output.Text);
            });
        }
        else if (type == RealtimeServerMessageType.OutputAudioDone)
        {
            yield return Write("response.output_audio.done", w => WriteIds(w, state));
        }
        else if (type == RealtimeServerMessageType.OutputAudioTranscriptionDone)
        {
            yield return Write("response.output_audio_transcript.done", w =>
            {
                WriteIds(w, state);
                w.WriteString("transcript", output.Text);
            });
        }
        else if (type == RealtimeServerMessageType.OutputTextDone)
        {
            yield return Write("response.output_text.done", w =>
            {
                WriteIds(w, state);
                w.WriteString("text", output.Text);
            });
        }
    }

    private IEnumerable<byte[]> Transcription(InputAudioTranscriptionRealtimeServerMessage transcription)
    {
        var type = transcription.Type;
        if (type == RealtimeServerMessageType.InputAudioTranscriptionDelta)
        {
            yield return Write("conversation.item.input_audio_transcription.delta", w =>
            {
                WriteOptional(w, "item_id", transcription.ItemId);
                w.WriteNumber("content_index", transcription.ContentIndex ?? 0);
                w.WriteString("delta", transcription.Transcription);
            });
        }
        else if (type == RealtimeServerMessageType.InputAudioTranscriptionCompleted)
        {
            yield return Write("conversation.item.input_audio_transcription.completed", w =>
            {
                WriteOptional(w, "item_id", transcription.ItemId);
                w.WriteNumber("content_index", transcription.ContentIndex ?? 0);
                w.WriteString("transcript", transcription.Transcription);
                if (transcription.Usage is { } usage)
                {
                    // The shape the SDKs' schemas take: token counts, and the input's text and audio tokens.
                    w.WriteStartObject("usage");
                    w.WriteString("type", "tokens");
                    w.WriteNumber("input_tokens", usage.InputTokenCount ?? 0);
                    w.WriteStartObject("input_token_details");
                    w.WriteNumber("text_tokens", usage.InputTextTokenCount ?? 0);
                    w.WriteNumber("audio_tokens", usage.InputAudioTokenCount ?? 0);
                    w.WriteEndObject();
                    w.WriteNumber("output_tokens", usage.OutputTokenCount ?? 0);
                    w.WriteNumber("total_tokens", usage.TotalTokenCount ?? 0);
                    w.WriteEndObject();
                }
            });
        }
        else if (type == RealtimeServerMessageType.InputAudioTranscriptionFailed)
        {
            yield return Write("conversation.item.input_audio_transcription.failed", w =>
            {
                WriteOptional(w, "item_id", transcription.ItemId);
                w.WriteNumber("content_index", transcription.ContentIndex ?? 0);
                w.WriteStartObject("error");
                w.WriteString("type", "server_error");
                w.WriteString("code", transcription.Error?.ErrorCode ?? "transcription_failed");
                w.WriteString("message", transcription.Error?.Message ?? "Transcribing the turn failed.");
                w.WriteEndObject();
            });
        }
    }

    private ResponseState StateOf(string? responseId)
    {
        string id = responseId ?? "resp";
        if (!_responses.TryGetValue(id, out var state))
        {
            // A message of a response announced before (never the case with Mini-Omni's sessions): measured from here.
            state = _responses[id] = new ResponseState(id, true, metrics.StartAnswer("realtime"));
        }

        return state;
    }

    private void WriteResponse(Utf8JsonWriter w, ResponseState state, string status, ResponseCreatedRealtimeServerMessage message)
    {
        w.WriteStartObject("response");
        w.WriteString("object", "realtime.response");
        w.WriteString("id", state.Id);
        w.WriteString("status", status);
        switch (status)
        {
            case "cancelled":
                w.WriteStartObject("status_details");
                w.WriteString("type", "cancelled");
                w.WriteString("reason", ReasonOf(message) ?? MiniOmniRealtimeStatusReasons.ClientCancelled);
                w.WriteEndObject();
                break;
            case "incomplete":
                w.WriteStartObject("status_details");
                w.WriteString("type", "incomplete");
                w.WriteString("reason", ReasonOf(message) ?? MiniOmniRealtimeStatusReasons.MaxOutputTokens);
                w.WriteEndObject();
                break;
            case "failed":
                w.WriteStartObject("status_details");
                w.WriteString("type", "failed");
                w.WriteStartObject("error");
                w.WriteString("type", "server_error");
                w.WriteString("code", message.Error?.ErrorCode ?? "response_failed");
                w.WriteString("message", message.Error?.Message ?? "The answer failed.");
                w.WriteEndObject();
                w.WriteEndObject();
                break;
            default:
                w.WriteNull("status_details");
                break;
        }

        // The beta listed both modalities of a spoken answer, and named the field "modalities".
        w.WriteStartArray(protocol.Beta ? "modalities" : "output_modalities");
        if (state.Speaks && protocol.Beta)
        {
            w.WriteStringValue("text");
        }

        w.WriteStringValue(state.Speaks ? "audio" : "text");
        w.WriteEndArray();
        if (protocol.Beta && state.Speaks)
        {
            w.WriteString("output_audio_format", BetaFormat(state.OutputFormat));
        }

        w.WriteStartArray("output");
        if (status != "in_progress" && state.ItemId is not null)
        {
            w.WriteStartObject();
            WriteItemBody(w, state.ItemId, ChatRole.Assistant, state.ItemStatus ?? (status == "completed" ? "completed" : "incomplete"), state.Speaks, state.Said is { } said ? [new TextContent(said)] : []);
            w.WriteEndObject();
        }

        foreach (var call in state.Calls)
        {
            w.WriteStartObject();
            RealtimeToolEvents.WriteItemBody(w, call.Id, call, "completed");
            w.WriteEndObject();
        }

        w.WriteEndArray();
        if (message.Usage is { } usage)
        {
            // OpenAI's response usage: input and output with their text and audio tokens, and the cached share of the input.
            w.WriteStartObject("usage");
            w.WriteNumber("total_tokens", usage.TotalTokenCount ?? 0);
            w.WriteNumber("input_tokens", usage.InputTokenCount ?? 0);
            w.WriteNumber("output_tokens", usage.OutputTokenCount ?? 0);
            w.WriteStartObject("input_token_details");
            w.WriteNumber("cached_tokens", usage.CachedInputTokenCount ?? 0);
            w.WriteNumber("text_tokens", usage.InputTextTokenCount ?? 0);
            w.WriteNumber("audio_tokens", usage.InputAudioTokenCount ?? 0);
            w.WriteNumber("image_tokens", 0);
            w.WriteStartObject("cached_tokens_details");
            // Nothing is cached (see RealtimeUsage), so its split is all zeros.
            w.WriteNumber("text_tokens", 0);
            w.WriteNumber("audio_tokens", 0);
            w.WriteNumber("image_tokens", 0);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("output_token_details");
            w.WriteNumber("text_tokens", usage.OutputTextTokenCount ?? 0);
            w.WriteNumber("audio_tokens", usage.OutputAudioTokenCount ?? 0);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("usage");
        }

        w.WriteEndObject();
    }

    private static void WriteIds(Utf8JsonWriter w, ResponseState state)
    {
        w.WriteString("response_id", state.Id);
        WriteOptional(w, "item_id", state.ItemId);
        w.WriteNumber("output_index", 0);
        w.WriteNumber("content_index", 0);
    }

    private static void WritePart(Utf8JsonWriter w, bool speaks, string said)
    {
        w.WriteStartObject("part");
        w.WriteString("type", speaks ? "audio" : "text");
        w.WriteString(speaks ? "transcript" : "text", said);
        w.WriteEndObject();
    }

    // What a Mini-Omni session says of an item beyond MEAI's item (see MiniOmniRealtimeItemDetails): a completed turn otherwise.
    private static MiniOmniRealtimeItemDetails DetailsOf(RealtimeConversationItem? item) =>
        item?.RawRepresentation as MiniOmniRealtimeItemDetails ?? new MiniOmniRealtimeItemDetails("completed", null);

    private static string? ReasonOf(ResponseCreatedRealtimeServerMessage message) =>
        message.AdditionalProperties?.TryGetValue(MiniOmniRealtimeStatusReasons.Key, out object? reason) == true ? reason as string : null;

    // conversation.item.added / .done (the beta's conversation.item.created, and no done), with the item's place.
    private byte[]? WriteConversationItem(string gaType, RealtimeConversationItem? item) =>
        protocol.Name(gaType) is null ? null : Write(gaType, w =>
        {
            WriteOptional(w, "previous_item_id", DetailsOf(item).PreviousItemId);
            WriteItem(w, "item", item);
        });

    private void WriteItem(Utf8JsonWriter w, string name, RealtimeConversationItem? item)
    {
        var details = DetailsOf(item);
        w.WriteStartObject(name);
        if (RealtimeToolEvents.IsToolItem(item))
        {
            RealtimeToolEvents.WriteItemBody(w, item!.Id, item, details.Status);
            w.WriteEndObject();
            return;
        }

        WriteItemBody(w, item?.Id, item?.Role ?? ChatRole.User, details.Status, details.Speaks, item?.Contents ?? []);
        w.WriteEndObject();
    }

    private void WriteItemBody(Utf8JsonWriter w, string? id, ChatRole role, string status, bool speaks, IList<AIContent> contents)
    {
        WriteOptional(w, "id", id);
        w.WriteString("object", "realtime.item");
        w.WriteString("type", "message");
        w.WriteString("status", status);
        w.WriteString("role", role.Value);
        w.WriteStartArray("content");
        if (role == ChatRole.Assistant)
        {
            if (status != "in_progress")
            {
                string text = string.Concat(contents.OfType<TextContent>().Select(c => c.Text));
                w.WriteStartObject();
                w.WriteString("type", (speaks, protocol.Beta) switch
                {
                    (true, false) => "output_audio",
                    (true, true) => "audio",
                    (false, false) => "output_text",
                    (false, true) => "text",
                });
                w.WriteString(speaks ? "transcript" : "text", text);
                w.WriteEndObject();
            }
        }
        else
        {
            // A user's audio is not echoed back: the part says it was audio, with its transcript once there is one
            // (a text part after audio is its transcript).
            for (int i = 0; i < contents.Count; i++)
            {
                w.WriteStartObject();
                if (contents[i] is DataContent)
                {
                    w.WriteString("type", "input_audio");
                    if (i + 1 < contents.Count && contents[i + 1] is TextContent transcript)
                    {
                        w.WriteString("transcript", transcript.Text);
                        i++;
                    }
                    else
                    {
                        w.WriteNull("transcript");
                    }
                }
                else if (contents[i] is TextContent part)
                {
                    w.WriteString("type", "input_text");
                    w.WriteString("text", part.Text);
                }

                w.WriteEndObject();
            }
        }

        w.WriteEndArray();
    }

    // The beta's session object: top-level formats as names, turn detection and transcription, "modalities".
    private byte[] BetaSession(string type, string sessionId, RealtimeSessionOptions options) => Write(type, w =>
    {
        w.WriteStartObject("session");
        w.WriteString("object", "realtime.session");
        w.WriteString("id", sessionId);
        w.WriteString("model", options.Model ?? "mini-omni");
        w.WriteStartArray("modalities");
        bool speaks = options.OutputModalities is not { Count: > 0 } modalities || modalities.Contains("audio") || !modalities.Contains("text");
        w.WriteStringValue("text");
        if (speaks)
        {
            w.WriteStringValue("audio");
        }

        w.WriteEndArray();
        w.WriteString("instructions", options.Instructions ?? string.Empty);
        w.WriteString("voice", options.Voice ?? "mini-omni");
        w.WriteString("input_audio_format", BetaFormat(options.InputAudioFormat));
        w.WriteString("output_audio_format", BetaFormat(options.OutputAudioFormat));
        WriteTranscription(w, "input_audio_transcription", options);
        WriteTurnDetection(w, options);
        w.WriteStartArray("tools");
        w.WriteEndArray();
        w.WriteString("tool_choice", "auto");
        if (options.MaxOutputTokens is { } max)
        {
            w.WriteNumber("max_response_output_tokens", max);
        }
        else
        {
            w.WriteString("max_response_output_tokens", "inf");
        }

        w.WriteEndObject();
    });

    private static string BetaFormat(RealtimeAudioFormat? format) => format?.MediaType switch
    {
        "audio/pcmu" => "g711_ulaw",
        "audio/pcma" => "g711_alaw",
        _ => "pcm16",
    };

    private static void WriteTranscription(Utf8JsonWriter w, string name, RealtimeSessionOptions options)
    {
        if (options.TranscriptionOptions is null or MiniOmniTranscriptionOptions { Enabled: false })
        {
            w.WriteNull(name);
            return;
        }

        w.WriteStartObject(name);
        w.WriteString("model", options.TranscriptionOptions.ModelId ?? "mini-omni");
        if (options.TranscriptionOptions.SpeechLanguage is { } language)
        {
            w.WriteString("language", language);
        }

        w.WriteEndObject();
    }

    private static void WriteTurnDetection(Utf8JsonWriter w, RealtimeSessionOptions options)
    {
        if (options.VoiceActivityDetection is { Enabled: true } detection)
        {
            var ours = detection as MiniOmniVoiceActivityDetectionOptions ?? new MiniOmniVoiceActivityDetectionOptions();
            w.WriteStartObject("turn_detection");
            w.WriteString("type", "server_vad");
            w.WriteNumber("threshold", Math.Clamp((ours.ThresholdDb + 40) / 40 + 0.5, 0, 1));
            w.WriteNumber("prefix_padding_ms", (int)ours.PrefixPadding.TotalMilliseconds);
            w.WriteNumber("silence_duration_ms", (int)ours.SilenceDuration.TotalMilliseconds);
            w.WriteBoolean("create_response", ours.CreateResponse);
            w.WriteBoolean("interrupt_response", detection.AllowInterruption);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("turn_detection");
        }
    }

    private static void WriteFormat(Utf8JsonWriter w, RealtimeAudioFormat format)
    {
        w.WriteStartObject("format");
        if (format.MediaType is "audio/pcmu" or "audio/pcma")
        {
            // G.711 names no rate: it is 8 kHz.
            w.WriteString("type", format.MediaType);
        }
        else
        {
            w.WriteString("type", "audio/pcm");
            w.WriteNumber("rate", format.SampleRate > 0 ? format.SampleRate : 24000);
        }

        w.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    // Writes one event, under the name the connection's version gives it.
    private byte[] Write(string type, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", protocol.Name(type) ?? type);
            w.WriteString("event_id", $"event_{Interlocked.Increment(ref _nextEvent)}");
            body(w);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private sealed class ResponseState(string id, bool speaks, ServerMetrics.AnswerMeasurement measurement)
    {
        public string Id { get; } = id;

        public bool Speaks { get; } = speaks;

        public ServerMetrics.AnswerMeasurement Measurement { get; } = measurement;

        public int OutputRate { get; init; } = 24000;

        public int BytesPerSample { get; init; } = 2;

        public RealtimeAudioFormat? OutputFormat { get; init; }

        public string? ItemStatus { get; set; }

        public string? ItemId { get; set; }

        public string? Said { get; set; }

        /// <summary>The function call items the response made, in order.</summary>
        public List<RealtimeConversationItem> Calls { get; } = [];
    }
}
