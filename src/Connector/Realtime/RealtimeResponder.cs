using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Runs a realtime session's answers: a response request becomes a plan and a queued answer, streamed as MEAI server
/// messages; speech that starts over an answer (barge-in) cancels it and cuts it to what was heard. Used under the
/// session's gate; each answer runs on the session's work queue.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeResponder(RealtimeSessionContext session, RealtimeTurnTaker turns, RealtimeConversationItems items, RealtimeTranscriber transcriber)
{
    // The answers that may still be generating or playing, oldest first.
    private readonly List<RealtimeResponse> _responses = [];

    /// <summary>Answers the latest user turn (or the request's own items), as <paramref name="request"/> asks; null: as the session's settings say.</summary>
    /// <exception cref="RealtimeRequestException">The request asks for what Mini-Omni cannot do, or there is nothing to answer.</exception>
    public async Task CreateAsync(CreateResponseRealtimeClientMessage? request)
    {
        var settings = session.Settings;
        if (settings.Transcribes)
        {
            throw new RealtimeRequestException(
                RealtimeErrorCodes.UnsupportedMessage,
                "This is a transcription session: it transcribes committed audio and does not answer. Create a conversation session to get answers.");
        }

        if (request?.Tools is { Count: > 0 })
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, $"The response names {request.Tools.Count} tool(s), but Mini-Omni cannot call tools; leave Tools empty.");
        }

        bool speaks = RealtimeSessionSettings.SpeaksFor(request?.OutputModalities, "the response's OutputModalities") ?? settings.Speaks;
        var output = RealtimeSessionSettings.OutputFormatOf(request?.OutputAudioOptions, "the response's OutputAudioOptions") ?? (settings.OutputSampleRate, settings.OutputEncoding);
        if (request?.MaxOutputTokens is <= 0)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, $"The response's MaxOutputTokens is {request.MaxOutputTokens}; it must be at least 1, or unset.");
        }

        int maxTokens = request?.MaxOutputTokens ?? settings.Options.MaxOutputTokens ?? 0;

        var plan = new ResponsePlan(speaks, request?.Instructions ?? settings.Options.Instructions, maxTokens, output.Rate, output.Encoding);
        var conversation = session.Conversation;
        bool keep = request?.ExcludeFromConversation != true;
        if (request?.Items is { Count: > 0 } outOfBand)
        {
            // Out of band: the answer hears only these items and stays out of the session's conversation.
            conversation = items.OutOfBand(outOfBand);
            keep = false;
        }
        else if (turns.HoldsAudioWithoutDetection && !session.Conversation.HasQuestion)
        {
            await turns.CommitBufferAsync(respond: false).ConfigureAwait(false);
        }

        var question = conversation.TakeQuestion() ?? throw new RealtimeRequestException(
            RealtimeErrorCodes.NothingToAnswer,
            "There is no user turn to answer: append audio and commit it (or let turn detection commit it), or add a user item, before asking for a response.");
        transcriber.Forget(question);
        var answer = new ConversationEntry(session.NewId("item"), ChatRole.Assistant) { Status = RealtimeItemStatus.InProgress };
        if (keep)
        {
            conversation.Add(answer);
        }

        var response = new RealtimeResponse(session.NewId("resp"), question, answer, conversation, plan, session.Lifetime);
        _responses.RemoveAll(r => r.IsOver(session.ClientOptions.TimeProvider.GetUtcNow()));
        _responses.Add(response);
        await session.EmitAsync(new ResponseCreatedRealtimeServerMessage(RealtimeServerMessageType.ResponseCreated)
        {
            ResponseId = response.Id,
            OutputModalities = [speaks ? "audio" : "text"],
            OutputAudioOptions = speaks ? new RealtimeAudioFormat(MediaTypeOf(output.Encoding), output.Rate) : null,
            MaxOutputTokens = maxTokens > 0 ? maxTokens : null,
            AdditionalProperties = request?.AdditionalProperties,
        }).ConfigureAwait(false);

        // Earlier spoken turns are transcribed first, as the answer's preamble shows them; its own turn after it, to keep it quick.
        transcriber.QueueDeferred();
        session.Work.Enqueue(previous => response.Completion = AnswerAsync(response, previous));
        if (question.Audio is not null && question.Text is null && session.Settings.TranscribesUserSpeech(session.ClientOptions) && conversation == session.Conversation)
        {
            transcriber.Queue(question);
        }
    }

    /// <summary>Stops the answers still generating (or only <paramref name="responseId"/>); each ends with its response-done, cancelled.</summary>
    public async Task CancelAsync(string? responseId)
    {
        var cancelled = _responses.Where(r => !r.Finished && (responseId is null || r.Id == responseId)).ToArray();
        foreach (var response in cancelled)
        {
            response.Cancel(MiniOmniRealtimeStatusReasons.ClientCancelled);
        }

        foreach (var response in cancelled)
        {
            await response.Completion.ConfigureAwait(false);
        }
    }

    /// <summary>Barge-in: cancels every answer still generating, waits for their done messages, and cuts the one being heard to what was heard.</summary>
    public async Task InterruptAsync()
    {
        var now = session.ClientOptions.TimeProvider.GetUtcNow();
        _responses.RemoveAll(r => r.IsOver(now));
        if (_responses.Count == 0)
        {
            return;
        }

        var interrupted = _responses.ToArray();
        _responses.Clear();
        foreach (var response in interrupted)
        {
            response.Cancel(MiniOmniRealtimeStatusReasons.TurnDetected);
        }

        foreach (var response in interrupted)
        {
            await response.Completion.ConfigureAwait(false);
        }

        foreach (var response in interrupted.Where(r => r.Started && r.Plan.Speaks))
        {
            var heard = response.Heard(now);
            string kept = response.HeardText(heard);
            response.Conversation.SetText(response.Answer, kept);
            response.Answer.AudioEnd = heard;
            if (heard < response.AudioDuration)
            {
                response.Answer.Status = RealtimeItemStatus.Incomplete;
            }

            session.Logger.LogDebug("Realtime session {Session}: {Response} interrupted after {Heard} of {Total} heard.", session.IdPrefix, response.Id, heard, response.AudioDuration);
            await session.EmitAsync(new AnswerTruncatedRealtimeServerMessage { ResponseId = response.Id, ItemId = response.Answer.Id, AudioEnd = heard, Text = kept }).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the answer generating <paramref name="answer"/>, if one is, for the client (a truncate or a delete of its item), and waits for its end.</summary>
    public async Task StopAnswerOfAsync(ConversationEntry answer)
    {
        var generating = _responses.Where(r => r.Answer == answer && !r.Finished).ToArray();
        foreach (var response in generating)
        {
            response.Cancel(MiniOmniRealtimeStatusReasons.ClientCancelled);
        }

        foreach (var response in generating)
        {
            await response.Completion.ConfigureAwait(false);
        }
    }

    /// <summary>The media type of audio deltas stored as <paramref name="encoding"/>.</summary>
    public static string MediaTypeOf(RealtimeSampleEncoding encoding) => encoding switch
    {
        RealtimeSampleEncoding.MuLaw => RealtimeG711.MuLawMediaType,
        RealtimeSampleEncoding.ALaw => RealtimeG711.ALawMediaType,
        _ => "audio/pcm",
    };

    private async Task AnswerAsync(RealtimeResponse response, Task previous)
    {
        var plan = response.Plan;
        string status = RealtimeResponseStatus.Completed;
        UsageDetails? usage = null;
        ErrorContent? error = null;
        var outputResampler = default(StreamingResampler);
        var token = response.Token;
        try
        {
            // The answer runs off the thread that asked for it, which holds the session's input.
            await Task.Yield();
            await previous.WaitAsync(token).ConfigureAwait(false);
            var question = response.Question;
            var request = new MiniOmniRequest
            {
                Task = (question.Audio is not null, plan.Speaks) switch
                {
                    (true, true) => MiniOmniTask.A1A2,
                    (true, false) => MiniOmniTask.A1T2,
                    (false, true) => MiniOmniTask.T1A2,
                    (false, false) => MiniOmniTask.T1T2,
                },
                Audio = question.Audio ?? default(ReadOnlyMemory<float>),
                Text = question.Audio is null ? question.Text : null,
                Preamble = response.Conversation.RenderPreamble(plan.Instructions, question, session.ClientOptions.HistoryCharacterBudget),
                BatchParallel = session.ClientOptions.BatchParallel && question.Audio is not null && plan.Speaks,
                Sampling = session.ClientOptions.Sampling,
                MaxTokens = plan.MaxTokens,
                EncoderMode = session.ClientOptions.EncoderMode,
            };

            response.Started = true;
            await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ResponseOutputItemAdded)
            {
                ResponseId = response.Id,
                OutputIndex = 0,
                Item = AnswerItem(response, []),
            }).ConfigureAwait(false);
            await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ConversationItemAdded)
            {
                ResponseId = response.Id,
                Item = AnswerItem(response, []),
            }).ConfigureAwait(false);
            await foreach (var update in session.Engine.GenerateAsync(request, token).ConfigureAwait(false))
            {
                switch (update)
                {
                    case TextDelta text:
                        response.AddText(text.Text);
                        await session.EmitAsync(RealtimeOutbox.Output(response, plan.Speaks ? RealtimeServerMessageType.OutputAudioTranscriptionDelta : RealtimeServerMessageType.OutputTextDelta, text: text.Text)).ConfigureAwait(false);
                        break;
                    case SpeechChunk speech when plan.Speaks:
                        if (outputResampler?.InputRate != speech.SampleRate)
                        {
                            outputResampler = new StreamingResampler(speech.SampleRate, plan.OutputSampleRate);
                        }

                        float[] samples = outputResampler.Resample(speech.Samples);
                        if (samples.Length > 0)
                        {
                            response.AddAudio(samples.Length, session.ClientOptions.TimeProvider.GetUtcNow());
                            await session.EmitAsync(RealtimeOutbox.Output(response, RealtimeServerMessageType.OutputAudioDelta, audio: Convert.ToBase64String(RealtimeG711.Encode(samples, plan.OutputEncoding)))).ConfigureAwait(false);
                        }

                        break;
                    case AnswerCompleted completed:
                        usage = RealtimeUsage.From(completed, plan.Speaks);
                        if (plan.MaxTokens > 0 && completed.Steps >= plan.MaxTokens)
                        {
                            status = RealtimeResponseStatus.Incomplete;
                        }

                        break;
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            status = RealtimeResponseStatus.Cancelled;
        }
        catch (Exception e)
        {
            status = RealtimeResponseStatus.Failed;
            string message = $"The answer failed: {e.Message}";
            error = new ErrorContent(message) { ErrorCode = RealtimeErrorCodes.ResponseFailed };
            session.Logger.LogError(e, "Realtime session {Session}: {Response} failed.", session.IdPrefix, response.Id);
            await session.EmitAsync(new ErrorRealtimeServerMessage { Error = error }).ConfigureAwait(false);
        }

        string said = response.Text;
        string? reason = status == RealtimeResponseStatus.Cancelled ? response.CancelReason ?? MiniOmniRealtimeStatusReasons.ClientCancelled
            : status == RealtimeResponseStatus.Incomplete ? MiniOmniRealtimeStatusReasons.MaxOutputTokens
            : null;
        if (response.Started)
        {
            response.Conversation.SetText(response.Answer, said);
            response.Answer.Status = status == RealtimeResponseStatus.Completed ? RealtimeItemStatus.Completed : RealtimeItemStatus.Incomplete;
            if (plan.Speaks)
            {
                await session.EmitAsync(RealtimeOutbox.Output(response, RealtimeServerMessageType.OutputAudioDone)).ConfigureAwait(false);
                await session.EmitAsync(RealtimeOutbox.Output(response, RealtimeServerMessageType.OutputAudioTranscriptionDone, text: said)).ConfigureAwait(false);
            }
            else
            {
                await session.EmitAsync(RealtimeOutbox.Output(response, RealtimeServerMessageType.OutputTextDone, text: said)).ConfigureAwait(false);
            }

            await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ResponseOutputItemDone)
            {
                ResponseId = response.Id,
                OutputIndex = 0,
                Item = AnswerItem(response, [new TextContent(said)]),
            }).ConfigureAwait(false);
            await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ConversationItemDone)
            {
                ResponseId = response.Id,
                Item = AnswerItem(response, [new TextContent(said)]),
            }).ConfigureAwait(false);
        }
        else
        {
            // Never begun: the answer said nothing, and its item is not kept.
            response.Conversation.Remove(response.Answer);
        }

        await session.EmitAsync(new ResponseCreatedRealtimeServerMessage(RealtimeServerMessageType.ResponseDone)
        {
            ResponseId = response.Id,
            Status = status,
            Usage = usage,
            Error = error,
            OutputModalities = [plan.Speaks ? "audio" : "text"],
            AdditionalProperties = reason is null ? null : new AdditionalPropertiesDictionary { [MiniOmniRealtimeStatusReasons.Key] = reason },
        }).ConfigureAwait(false);
        session.Logger.LogDebug("Realtime session {Session}: {Response} {Status}.", session.IdPrefix, response.Id, status);
        response.Finish();
    }

    // The answer's item as OpenAI's events show it: its status and place in the conversation ride in its raw representation.
    private static RealtimeConversationItem AnswerItem(RealtimeResponse response, IList<AIContent> contents) =>
        new(contents, response.Answer.Id, ChatRole.Assistant)
        {
            RawRepresentation = new MiniOmniRealtimeItemDetails(response.Answer.Status, response.Conversation.PreviousId(response.Answer), response.Plan.Speaks),
        };
}
