using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Api;

/// <summary>POST /v1/audio/transcriptions over the <see cref="ISpeechToTextClient"/>, and POST /v1/audio/speech over the <see cref="ITextToSpeechClient"/>.</summary>
internal static class AudioEndpoints
{
    public static async Task TranscribeAsync(HttpContext context, ServerClients clients, ServerMetrics metrics, IOptions<MiniOmniServerOptions> options)
    {
        var limits = options.Value.Limits;
        if (!context.Request.HasFormContentType)
        {
            throw ApiRequestException.Invalid($"Send the audio as multipart/form-data with a 'file' field; the request came as '{context.Request.ContentType}'.", "file", "invalid_content_type");
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        var file = form.Files.GetFile("file") ?? throw ApiRequestException.Invalid("The form has no 'file' field with the audio to transcribe.", "file", "missing_required_parameter");
        string format = form["response_format"].FirstOrDefault() ?? "json";
        if (format is not ("json" or "text" or "verbose_json" or "srt" or "vtt"))
        {
            throw ApiRequestException.Invalid($"response_format '{format}' is not one of json, text, verbose_json, srt, vtt.", "response_format");
        }

        bool stream = bool.TryParse(form["stream"].FirstOrDefault(), out bool s) && s;
        byte[] bytes;
        using (var buffer = new MemoryStream())
        {
            await file.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            bytes = buffer.ToArray();
        }

        string? mediaType = file.ContentType is { } type && type.StartsWith("audio/", StringComparison.OrdinalIgnoreCase) && !type.Contains("octet", StringComparison.Ordinal)
            ? type
            : RequestAudio.MediaTypeOf(Path.GetExtension(file.FileName));
        float[] samples = RequestAudio.DecodeRecording(bytes, mediaType, $"file '{file.FileName}'", limits, "file");
        double duration = samples.Length / (double)WhisperLogMel.SampleRate;
        var sttOptions = new SpeechToTextOptions
        {
            ModelId = clients.ModelId,
            SpeechLanguage = form["language"].FirstOrDefault(),
            AdditionalProperties = new() { [MiniOmniChatOptions.EncoderModeKey] = options.Value.EncoderMode == Speech.EncoderMode.Fast ? "fast" : "exact" },
        };

        // The client cuts a long recording into windows Mini-Omni can hear; each window comes back as one update, with its times.
        using var measurement = metrics.StartAnswer("transcription");
        using var audio = new MemoryStream(RequestAudio.ToWav(samples, file.FileName).Data.ToArray());
        await using var updates = clients.SpeechToText.GetStreamingTextAsync(audio, sttOptions, context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);
        bool more = await updates.MoveNextAsync().ConfigureAwait(false);
        var text = new StringBuilder();
        var segments = new List<TranscriptionSegment>();
        UsageDetails? usage = null;
        ServerSentEvents? events = null;
        if (stream)
        {
            events = new ServerSentEvents(context.Response);
            await events.StartAsync().ConfigureAwait(false);
        }

        for (; more; more = await updates.MoveNextAsync().ConfigureAwait(false))
        {
            var update = updates.Current;
            string windowText = string.Concat(update.Contents.OfType<TextContent>().Select(t => t.Text));
            if (windowText.Length > 0)
            {
                text.Append(windowText);
                var start = update.StartTime ?? TimeSpan.Zero;
                var end = update.EndTime ?? TimeSpan.FromSeconds(duration);
                segments.Add(new TranscriptionSegment(segments.Count, (int)(start.TotalSeconds * 100), start.TotalSeconds, end.TotalSeconds, windowText.Trim(), [], 0, 0, 0, 0));
                if (events is not null)
                {
                    await events.WriteAsync(new SpeechEvent("transcript.text.delta", Audio: null) { Delta = windowText }, ServerJsonContext.Default.SpeechEvent).ConfigureAwait(false);
                }
            }

            foreach (var used in update.Contents.OfType<UsageContent>())
            {
                usage = used.Details;
                measurement.Usage(used.Details);
            }
        }

        measurement.End("completed");
        string transcript = text.ToString().Trim();
        var tokens = new TranscriptionUsage("tokens", (int)(usage?.InputTokenCount ?? 0), (int)(usage?.OutputTokenCount ?? 0), (int)(usage?.TotalTokenCount ?? 0));
        if (events is not null)
        {
            await events.WriteAsync(new SpeechEvent("transcript.text.done", Usage: new SpeechUsage(tokens.InputTokens, tokens.OutputTokens, tokens.TotalTokens)) { Text = transcript }, ServerJsonContext.Default.SpeechEvent).ConfigureAwait(false);
            await events.DoneAsync().ConfigureAwait(false);
            return;
        }

        switch (format)
        {
            case "text":
                await Results.Text(transcript, "text/plain", Encoding.UTF8).ExecuteAsync(context).ConfigureAwait(false);
                break;
            case "verbose_json":
                var verbose = new VerboseTranscriptionJson("transcribe", sttOptions.SpeechLanguage ?? "english", duration, transcript, segments);
                await context.Response.WriteAsJsonAsync(verbose, ServerJsonContext.Default.VerboseTranscriptionJson, "application/json", context.RequestAborted).ConfigureAwait(false);
                break;
            case "srt":
                await Results.Text(Cues(segments, ','), "text/plain", Encoding.UTF8).ExecuteAsync(context).ConfigureAwait(false);
                break;
            case "vtt":
                await Results.Text("WEBVTT\n\n" + Cues(segments, '.'), "text/vtt", Encoding.UTF8).ExecuteAsync(context).ConfigureAwait(false);
                break;
            default:
                await context.Response.WriteAsJsonAsync(new TranscriptionJson(transcript, tokens), ServerJsonContext.Default.TranscriptionJson, "application/json", context.RequestAborted).ConfigureAwait(false);
                break;
        }
    }

    // SubRip numbers its cues; WebVTT needs no numbers, but takes them as cue identifiers.
    private static string Cues(List<TranscriptionSegment> segments, char separator)
    {
        var cues = new StringBuilder();
        foreach (var segment in segments)
        {
            cues.Append(CultureInfo.InvariantCulture, $"{segment.Id + 1}\n{Timestamp(segment.Start, separator)} --> {Timestamp(segment.End, separator)}\n{segment.Text}\n\n");
        }

        return cues.ToString();
    }

    public static async Task SpeakAsync(HttpContext context, ServerClients clients, ServerMetrics metrics, IOptions<MiniOmniServerOptions> options)
    {
        var limits = options.Value.Limits;
        var request = await ApiJson.ReadAsync(context, ServerJsonContext.Default.SpeechRequest).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(request.Input))
        {
            throw ApiRequestException.Invalid("input is empty; give the text to speak.", "input", "missing_required_parameter");
        }

        if (request.Input.Length > limits.MaxTextCharacters)
        {
            throw ApiRequestException.TooLarge($"input is {request.Input.Length} characters; this server speaks at most {limits.MaxTextCharacters} (MiniOmni:Limits:MaxTextCharacters).", "input", "too_much_text");
        }

        // WAV by default (OpenAI's is mp3, which no maintained .NET library encodes): lossless, streamable, and every player reads it.
        string format = request.ResponseFormat?.ToLowerInvariant() ?? "wav";
        if (format is not ("wav" or "pcm" or "opus"))
        {
            throw ApiRequestException.Invalid(
                $"response_format '{request.ResponseFormat}' is not available here; this server speaks 'wav' (the default), 'pcm' (raw 24 kHz 16-bit mono) and 'opus' (Ogg Opus). " +
                "mp3, aac and flac need an encoder that no maintained .NET library provides.", "response_format", "unsupported_audio_format");
        }

        bool sse = request.StreamFormat switch
        {
            null or "audio" => false,
            "sse" => true,
            _ => throw ApiRequestException.Invalid($"stream_format '{request.StreamFormat}' is not 'audio' or 'sse'.", "stream_format"),
        };
        // For opus the client's PCM is encoded here, with the audio library's Ogg Opus writer.
        var ttsOptions = new TextToSpeechOptions { ModelId = clients.ModelId, VoiceId = request.Voice, AudioFormat = format == "opus" ? "pcm" : format, Speed = request.Speed, Language = null };

        using var measurement = metrics.StartAnswer("speech");
        await using var updates = clients.TextToSpeech.GetStreamingAudioAsync(request.Input, ttsOptions, context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);
        bool more = await updates.MoveNextAsync().ConfigureAwait(false);
        var response = context.Response;
        ServerSentEvents? events = null;
        if (sse)
        {
            events = new ServerSentEvents(response);
            await events.StartAsync().ConfigureAwait(false);
        }
        else
        {
            response.ContentType = format switch { "wav" => "audio/wav", "opus" => "audio/ogg", _ => "audio/pcm" };
            if (format == "wav")
            {
                // The length is unknown while the speech streams: the header says "as long as the stream", as streaming servers do.
                await response.Body.WriteAsync(WavHeader(Pcm16Wave.SpeechSampleRate, uint.MaxValue), context.RequestAborted).ConfigureAwait(false);
            }
        }

        // Opus pages are encoded into a buffer and sent as they are made (the response takes no synchronous writes).
        using var pages = format == "opus" ? new MemoryStream() : null;
        using var opus = pages is not null ? new OggOpusWriter(pages) : null;
        async Task SendAsync(ReadOnlyMemory<byte> bytes)
        {
            if (bytes.IsEmpty)
            {
                return;
            }

            if (events is not null)
            {
                await events.WriteAsync(new SpeechEvent("speech.audio.delta", Convert.ToBase64String(bytes.Span)), ServerJsonContext.Default.SpeechEvent).ConfigureAwait(false);
            }
            else
            {
                await response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
                await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }
        }

        async Task SendPagesAsync()
        {
            await SendAsync(pages!.GetBuffer().AsMemory(0, (int)pages.Length)).ConfigureAwait(false);
            pages.SetLength(0);
        }

        UsageDetails? usage = null;
        for (; more; more = await updates.MoveNextAsync().ConfigureAwait(false))
        {
            foreach (var content in updates.Current.Contents)
            {
                if (content is DataContent data && data.HasTopLevelMediaType("audio"))
                {
                    measurement.Audio(data.Data.Length / 2, Pcm16Wave.SpeechSampleRate);
                    if (opus is not null)
                    {
                        opus.Write(Pcm16ToFloat(data.Data.Span));
                        await SendPagesAsync().ConfigureAwait(false);
                    }
                    else
                    {
                        await SendAsync(data.Data).ConfigureAwait(false);
                    }
                }
                else if (content is UsageContent used)
                {
                    usage = used.Details;
                    measurement.Usage(used.Details);
                }
            }
        }

        if (opus is not null)
        {
            opus.Complete();
            await SendPagesAsync().ConfigureAwait(false);
        }

        measurement.End("completed");
        if (events is not null)
        {
            var tokens = new SpeechUsage((int)(usage?.InputTokenCount ?? 0), (int)(usage?.OutputTokenCount ?? 0), (int)(usage?.TotalTokenCount ?? 0));
            await events.WriteAsync(new SpeechEvent("speech.audio.done", Usage: tokens), ServerJsonContext.Default.SpeechEvent).ConfigureAwait(false);
        }
    }

    private static float[] Pcm16ToFloat(ReadOnlySpan<byte> pcm)
    {
        var samples = new float[pcm.Length / 2];
        for (int i = 0; i < samples.Length; i++)
        {
            samples[i] = BinaryPrimitives.ReadInt16LittleEndian(pcm[(2 * i)..]) / 32768f;
        }

        return samples;
    }

    private static string Timestamp(double seconds, char separator)
    {
        var time = TimeSpan.FromSeconds(seconds);
        return string.Create(CultureInfo.InvariantCulture, $"{(int)time.TotalHours:00}:{time.Minutes:00}:{time.Seconds:00}{separator}{time.Milliseconds:000}");
    }

    /// <summary>A PCM16 mono WAV header for <paramref name="dataBytes"/> of samples; <see cref="uint.MaxValue"/> says "as long as the stream".</summary>
    public static byte[] WavHeader(int sampleRate, uint dataBytes)
    {
        var header = new byte[44];
        "RIFF"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), dataBytes == uint.MaxValue ? uint.MaxValue : dataBytes + 36);
        "WAVEfmt "u8.CopyTo(header.AsSpan(8));
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), 16);
        BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(20), 1);
        BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(22), 1);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(24), sampleRate);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(28), sampleRate * 2);
        BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(32), 2);
        BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(34), 16);
        "data"u8.CopyTo(header.AsSpan(36));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(40), dataBytes);
        return header;
    }
}

/// <summary>GET /v1/models and /v1/models/{id}: the one loaded model.</summary>
internal static class ModelsEndpoint
{
    private static readonly long Started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public static IResult List(ServerClients clients) =>
        TypedResults.Json(new ModelList([new ModelWire(clients.ModelId, Started, "miniomni")]), ServerJsonContext.Default.ModelList);

    public static IResult Get(string id, ServerClients clients) =>
        string.Equals(id, clients.ModelId, StringComparison.OrdinalIgnoreCase)
            ? TypedResults.Json(new ModelWire(clients.ModelId, Started, "miniomni"), ServerJsonContext.Default.ModelWire)
            : TypedResults.Json(new ErrorBody(new ErrorWire($"The model '{id}' does not exist here; this server serves '{clients.ModelId}'.", "invalid_request_error", "model", "model_not_found")), ServerJsonContext.Default.ErrorBody, statusCode: 404);
}
