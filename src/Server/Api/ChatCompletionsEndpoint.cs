using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Api;

/// <summary>POST /v1/chat/completions over the <see cref="IChatClient"/>: whole answers, or server-sent events as the answer is made.</summary>
internal static class ChatCompletionsEndpoint
{
    public static async Task HandleAsync(HttpContext context, ServerClients clients, ServerMetrics metrics, IOptions<MiniOmniServerOptions> options, SpokenAnswers spokenAnswers)
    {
        var request = await ApiJson.ReadAsync(context, ServerJsonContext.Default.ChatCompletionRequest).ConfigureAwait(false);
        var (messages, chatOptions, plan) = ChatRequestMapper.Map(request, options.Value.Limits, clients.ModelId, spokenAnswers);
        if (chatOptions.AdditionalProperties?.ContainsKey(MiniOmniChatOptions.EncoderModeKey) != true)
        {
            chatOptions.WithEncoderMode(options.Value.EncoderMode);
        }

        using var measurement = metrics.StartAnswer("chat");
        var cancellation = context.RequestAborted;
        await using var updates = clients.Chat.GetStreamingResponseAsync(messages, chatOptions, cancellation).GetAsyncEnumerator(cancellation);

        // The first step checks the request (the history's fit, the options): its errors are the request's, with their status.
        bool more = await updates.MoveNextAsync().ConfigureAwait(false);
        var answer = new AnswerState(plan, measurement, spokenAnswers);
        if (!plan.Stream)
        {
            for (; more; more = await updates.MoveNextAsync().ConfigureAwait(false))
            {
                answer.Take(updates.Current);
            }

            measurement.End("completed");
            answer.Keep();
            await context.Response.WriteAsJsonAsync(answer.Completion(), ServerJsonContext.Default.ChatCompletion, "application/json", cancellation).ConfigureAwait(false);
            return;
        }

        var events = new ServerSentEvents(context.Response);
        await events.StartAsync().ConfigureAwait(false);
        try
        {
            await events.WriteAsync(answer.Chunk(new ChunkDelta { Role = "assistant", Content = plan.Speaks ? null : string.Empty }), ServerJsonContext.Default.ChatCompletionChunk).ConfigureAwait(false);
            for (; more; more = await updates.MoveNextAsync().ConfigureAwait(false))
            {
                foreach (var delta in answer.Take(updates.Current))
                {
                    await events.WriteAsync(answer.Chunk(delta), ServerJsonContext.Default.ChatCompletionChunk).ConfigureAwait(false);
                }
            }

            await events.WriteAsync(answer.Chunk(new ChunkDelta(), answer.FinishReason), ServerJsonContext.Default.ChatCompletionChunk).ConfigureAwait(false);
            if (plan.IncludeUsage)
            {
                await events.WriteAsync(answer.UsageChunk(), ServerJsonContext.Default.ChatCompletionChunk).ConfigureAwait(false);
            }

            measurement.End("completed");
            answer.Keep();
        }
        catch (Exception e) when (!cancellation.IsCancellationRequested)
        {
            // Past the headers the status is sent: the error goes out as an event, as OpenAI's streams carry them.
            var error = ApiError.From(e);
            context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ChatCompletionsEndpoint)).LogError(e, "A streamed chat answer failed.");
            await events.WriteAsync(error.Body, ServerJsonContext.Default.ErrorBody).ConfigureAwait(false);
        }

        await events.DoneAsync().ConfigureAwait(false);
    }

    /// <summary>What the answer has said so far, and how it is written as OpenAI's chunks and completion.</summary>
    private sealed class AnswerState(ChatAnswerPlan plan, ServerMetrics.AnswerMeasurement measurement, SpokenAnswers spokenAnswers)
    {
        private readonly string _id = $"chatcmpl-{Guid.NewGuid():N}";
        private readonly string _audioId = $"audio_{Guid.NewGuid():N}";
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        private readonly DateTimeOffset _expiresAt = spokenAnswers.ExpiryOfNew;
        private readonly StringBuilder _text = new();
        private readonly MemoryStream _pcm = new();
        private readonly List<ToolCallWire> _toolCalls = [];
        private UsageDetails? _usage;
        private ChatFinishReason? _finish;

        public string FinishReason => _toolCalls.Count > 0 ? "tool_calls" : _finish == ChatFinishReason.Length ? "length" : "stop";

        /// <summary>Takes one update; returns the chunk deltas it makes.</summary>
        public List<ChunkDelta> Take(ChatResponseUpdate update)
        {
            var deltas = new List<ChunkDelta>();
            _finish = update.FinishReason ?? _finish;
            foreach (var content in update.Contents)
            {
                switch (content)
                {
                    case TextContent { Text.Length: > 0 } text:
                        _text.Append(text.Text);
                        deltas.Add(plan.Speaks
                            ? new ChunkDelta { Audio = new AudioAnswerWire { Id = _audioId, Transcript = text.Text, ExpiresAt = Expiry } }
                            : new ChunkDelta { Content = text.Text });
                        break;
                    case DataContent data when plan.Speaks && data.HasTopLevelMediaType("audio"):
                        measurement.Audio(data.Data.Length / 2, Pcm16Wave.SpeechSampleRate);
                        if (!plan.Stream)
                        {
                            _pcm.Write(data.Data.Span);
                        }

                        deltas.Add(new ChunkDelta { Audio = new AudioAnswerWire { Id = _audioId, Data = Convert.ToBase64String(data.Data.Span), ExpiresAt = Expiry } });
                        break;
                    case FunctionCallContent call:
                        var wire = new ToolCallWire
                        {
                            Index = _toolCalls.Count,
                            Id = call.CallId,
                            Type = "function",
                            Function = new FunctionCallWire(call.Name, JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)),
                        };
                        _toolCalls.Add(wire);
                        deltas.Add(new ChunkDelta { ToolCalls = [wire] });
                        break;
                    case UsageContent usage:
                        _usage = usage.Details;
                        measurement.Usage(usage.Details);
                        break;
                    case ErrorContent error:
                        // A tool call the model wrote as invalid JSON: the answer goes on, and says so in its text.
                        _text.Append(error.Message);
                        deltas.Add(plan.Speaks ? new ChunkDelta { Audio = new AudioAnswerWire { Id = _audioId, Transcript = error.Message, ExpiresAt = Expiry } } : new ChunkDelta { Content = error.Message });
                        break;
                }
            }

            return deltas;
        }

        public ChatCompletionChunk Chunk(ChunkDelta delta, string? finishReason = null) => new()
        {
            Id = _id,
            Created = _created,
            Model = plan.Model,
            Choices = [new ChunkChoice { Delta = delta, FinishReason = finishReason }],
        };

        public ChatCompletionChunk UsageChunk() => new() { Id = _id, Created = _created, Model = plan.Model, Choices = [], Usage = Usage() };

        public ChatCompletion Completion()
        {
            AudioAnswerWire? audio = null;
            if (plan.Speaks && _toolCalls.Count == 0)
            {
                byte[] pcm = _pcm.ToArray();
                byte[] data = plan.AudioFormat == "pcm16" ? pcm : Wav(pcm);
                audio = new AudioAnswerWire { Id = _audioId, Data = Convert.ToBase64String(data), Transcript = _text.ToString(), ExpiresAt = Expiry };
            }

            return new ChatCompletion
            {
                Id = _id,
                Created = _created,
                Model = plan.Model,
                Choices =
                [
                    new ChatChoice
                    {
                        Message = new AssistantMessageWire
                        {
                            Content = plan.Speaks && audio is not null ? null : _text.ToString(),
                            Audio = audio,
                            ToolCalls = _toolCalls.Count > 0 ? [.. _toolCalls.Select(c => c with { Index = null })] : null,
                        },
                        FinishReason = FinishReason,
                    },
                ],
                Usage = Usage(),
            };
        }

        /// <summary>Keeps a spoken answer's transcript, so that a later request can refer to it by its audio id.</summary>
        public void Keep()
        {
            if (plan.Speaks && _toolCalls.Count == 0)
            {
                spokenAnswers.Keep(_audioId, _text.ToString(), _expiresAt);
            }
        }

        // With OpenAI's details, which SDKs read (.NET's OutputTokenDetails is null without them).
        private UsageWire Usage() => new((int)(_usage?.InputTokenCount ?? 0), (int)(_usage?.OutputTokenCount ?? 0), (int)(_usage?.TotalTokenCount ?? 0))
        {
            PromptTokensDetails = new PromptTokensDetailsWire((int)(_usage?.InputAudioTokenCount ?? 0), (int)(_usage?.CachedInputTokenCount ?? 0)),
            CompletionTokensDetails = new CompletionTokensDetailsWire((int)(_usage?.OutputAudioTokenCount ?? 0), (int)(_usage?.ReasoningTokenCount ?? 0), 0, 0)
            {
                TextTokens = _usage?.OutputTextTokenCount is { } text ? (int)text : null,
            },
        };

        // Kept by the server until then (SpokenAnswers), so that the SDKs' audio {id} in a later request is resolved.
        private long Expiry => _expiresAt.ToUnixTimeSeconds();

        private static byte[] Wav(byte[] pcm) => [.. AudioEndpoints.WavHeader(Pcm16Wave.SpeechSampleRate, (uint)pcm.Length), .. pcm];
    }
}
