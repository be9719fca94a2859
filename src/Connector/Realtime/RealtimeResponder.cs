using System.Diagnostics.CodeAnalysis;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.AI;
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

        // The response's own tools and mode, else the session's; checked before anything is taken or said.
        bool ownToolMode = request?.ToolMode is not null;
        var tools = RealtimeToolOffer.From(
            (IEnumerable<AITool>?)request?.Tools ?? settings.Options.Tools,
            request?.ToolMode ?? settings.Options.ToolMode,
            request?.Tools is not null || ownToolMode ? "the response" : "the session");
        bool speaks = RealtimeSessionSettings.SpeaksFor(request?.OutputModalities, "the response's OutputModalities") ?? settings.Speaks;
        var output = RealtimeSessionSettings.OutputFormatOf(request?.OutputAudioOptions, "the response's OutputAudioOptions") ?? (settings.OutputSampleRate, settings.OutputEncoding);
        if (request?.MaxOutputTokens is <= 0)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, $"The response's MaxOutputTokens is {request.MaxOutputTokens}; it must be at least 1, or unset.");
        }

        int maxTokens = request?.MaxOutputTokens ?? settings.Options.MaxOutputTokens ?? 0;

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

        var question = conversation.TakeQuestion(out bool afterToolResults) ?? throw new RealtimeRequestException(
            RealtimeErrorCodes.NothingToAnswer,
            "There is no user turn to answer: append audio and commit it (or let turn detection commit it), or add a user item, before asking for a response.");
        if (afterToolResults && !ownToolMode)
        {
            // The session's required mode asks for a call in answer to a user turn; once results are back the answer goes
            // on freely, as FunctionInvokingChatClient lifts a required mode after its first round (else the loop never ends).
            tools = tools.Free();
        }

        // A turn that calls a tool speaks nothing, as in the chat client: a required call is answered in text.
        speaks &= tools.RequiredOpening is null;
        var plan = new ResponsePlan(speaks, request?.Instructions ?? settings.Options.Instructions, maxTokens, output.Rate, output.Encoding) { Tools = tools, AfterToolResults = afterToolResults };
        transcriber.Forget(question);
        var answer = new ConversationEntry(session.NewId("item"), ChatRole.Assistant) { Status = RealtimeItemStatus.InProgress };
        if (keep)
        {
            conversation.Add(answer);
        }

        var response = new RealtimeResponse(session.NewId("resp"), question, answer, conversation, plan, session.Lifetime);
        session.PreambleAhead.Stop();
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

        // Earlier spoken turns are transcribed first, as the answer's preamble shows them; its own turn beside its answer,
        // from the same encoding and off the work queue, so that no later turn waits for it.
        transcriber.QueueDeferred();
        // A thinker transcribes the turn itself before it is asked, and that transcript is reported (RealtimeThinking).
        if (question.Audio is not null && question.Text is null && session.Settings.TranscribesUserSpeech(session.ClientOptions) && conversation == session.Conversation && !afterToolResults
            && session.ClientOptions.Thinker is null)
        {
            response.Transcription = transcriber.Beside(question);
        }

        session.Work.Enqueue(previous => response.Completion = AnswerAsync(response, previous));
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

        session.PreambleAhead.Refresh();
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
        // With tools offered the answer is read as the chat client reads it: text is shown once it cannot be the start of a
        // tool call, speech is held while the answer may still be one, and a call ends the answer.
        // A thinker's calls come as MEAI function calls, not as text to parse.
        var toolCalls = plan.Tools.Offered && session.ClientOptions.Thinker is null ? new ToolCallParser() : null;
        var thinkerCalls = new List<FunctionCallContent>();
        var heldSpeech = new List<SpeechChunk>();
        var heldSpace = new StringBuilder();
        bool messageDone = false;
        bool called = false;
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
                Preamble = response.Conversation.RenderPreamble(plan.Tools.SystemText(plan.Instructions), question, session.ClientOptions.HistoryCharacterBudget, plan.AfterToolResults),
                AnswerPrefix = plan.Tools.RequiredOpening,
                BatchParallel = session.ClientOptions.BatchParallel && question.Audio is not null && plan.Speaks,
                Sampling = session.ClientOptions.Sampling,
                MaxTokens = plan.MaxTokens,
                EncoderMode = session.ClientOptions.EncoderMode,
                Transcription = response.Transcription,
                // The session's kept preambles are freed when it ends.
                CacheOwner = session,
            };

            // With tools offered, a message item opens only when there is something to say (a turn may only call).
            if (!plan.Tools.Offered)
            {
                await StartMessageAsync().ConfigureAwait(false);
            }

            // Stopped when the model has made its call: the engine's answer then leaves its batch.
            using var generation = CancellationTokenSource.CreateLinkedTokenSource(token);
            // With a thinker, it writes the answer and Mini-Omni speaks it; otherwise Mini-Omni answers itself.
            var answer = session.ClientOptions.Thinker is { } thinker
                ? RealtimeThinking.AnswerAsync(session, response, thinker, transcriber, generation.Token)
                : session.Engine.GenerateAsync(request, generation.Token);
            await foreach (var update in answer.ConfigureAwait(false))
            {
                switch (update)
                {
                    case ThinkerUpdate thought:
                        thinkerCalls.AddRange(thought.Update.Contents.OfType<FunctionCallContent>());
                        break;
                    case TextDelta text when toolCalls is null:
                        await ShowAsync(text.Text).ConfigureAwait(false);
                        break;
                    case TextDelta text:
                        await ReleaseAsync(toolCalls.Append(text.Text)).ConfigureAwait(false);
                        if (!called && !toolCalls.MayStillBeToolCall && !toolCalls.SawToolCall)
                        {
                            await ReleaseHeldSpeechAsync().ConfigureAwait(false);
                        }

                        break;
                    case SpeechChunk speech when plan.Speaks && toolCalls is null:
                        await SpeakAsync(speech).ConfigureAwait(false);
                        break;
                    case SpeechChunk speech when plan.Speaks && !toolCalls!.SawToolCall:
                        if (toolCalls.MayStillBeToolCall)
                        {
                            heldSpeech.Add(speech);
                        }
                        else
                        {
                            await SpeakAsync(speech).ConfigureAwait(false);
                        }

                        break;
                    case AnswerCompleted completed:
                        usage = RealtimeUsage.From(completed, plan.Speaks);
                        if (plan.MaxTokens > 0 && completed.Steps >= plan.MaxTokens)
                        {
                            status = RealtimeResponseStatus.Incomplete;
                        }

                        if (toolCalls is not null)
                        {
                            await ReleaseAsync(toolCalls.Complete()).ConfigureAwait(false);
                            if (!toolCalls.SawToolCall)
                            {
                                if (heldSpace.Length > 0)
                                {
                                    await ShowAsync(heldSpace.ToString()).ConfigureAwait(false);
                                }

                                await ReleaseHeldSpeechAsync().ConfigureAwait(false);
                            }
                        }

                        break;
                }

                if (called)
                {
                    await generation.CancelAsync().ConfigureAwait(false);
                    break;
                }
            }

            // The thinker's calls go back to the client as function call items, after what it said before them.
            foreach (var call in thinkerCalls)
            {
                called = true;
                await FinishMessageAsync().ConfigureAwait(false);
                await EmitFunctionCallAsync(response, call, outputIndex: response.Started ? 1 : 0).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            status = RealtimeResponseStatus.Cancelled;
        }
        catch (OperationCanceledException) when (called)
        {
            // The engine's answer, stopped after the model's call, said so as it ended: the response is complete.
        }
        catch (Exception e)
        {
            status = RealtimeResponseStatus.Failed;
            string message = $"The answer failed: {e.Message}";
            error = new ErrorContent(message) { ErrorCode = RealtimeErrorCodes.ResponseFailed };
            session.Logger.LogError(e, "Realtime session {Session}: {Response} failed.", session.IdPrefix, response.Id);
            await session.EmitAsync(new ErrorRealtimeServerMessage { Error = error }).ConfigureAwait(false);
        }

        if (response.Transcription is { } transcription)
        {
            // Cancelled before it reached the engine, or refused by it: the turn is transcribed on its own.
            transcriber.Abandoned(response.Question, transcription);
        }

        string? reason = status == RealtimeResponseStatus.Cancelled ? response.CancelReason ?? MiniOmniRealtimeStatusReasons.ClientCancelled
            : status == RealtimeResponseStatus.Incomplete ? MiniOmniRealtimeStatusReasons.MaxOutputTokens
            : null;
        if (response.Started)
        {
            await FinishMessageAsync().ConfigureAwait(false);
        }
        else
        {
            // Never begun: the answer said nothing (or only called a function), and its message item is not kept.
            response.Conversation.Remove(response.Answer);
        }

        // The answer is in the conversation as it will stay: the next turn's preamble can be decoded while the user speaks.
        session.PreambleAhead.Refresh();
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

        // The answer's message item, announced before its first text or speech (at once when no tools are offered).
        async Task StartMessageAsync()
        {
            if (response.Started)
            {
                return;
            }

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
        }

        async Task ShowAsync(string text)
        {
            await StartMessageAsync().ConfigureAwait(false);
            response.AddText(text);
            await session.EmitAsync(RealtimeOutbox.Output(response, plan.Speaks ? RealtimeServerMessageType.OutputAudioTranscriptionDelta : RealtimeServerMessageType.OutputTextDelta, text: text)).ConfigureAwait(false);
        }

        async Task SpeakAsync(SpeechChunk speech)
        {
            await StartMessageAsync().ConfigureAwait(false);
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
        }

        async Task ReleaseHeldSpeechAsync()
        {
            foreach (var chunk in heldSpeech)
            {
                await SpeakAsync(chunk).ConfigureAwait(false);
            }

            heldSpeech.Clear();
        }

        // What the parser released: text is shown; the first call ends the message and becomes an item of its own; a call the
        // model got wrong is an error message (the chat client's ErrorContent), and the answer goes on.
        async Task ReleaseAsync(IReadOnlyList<AIContent> contents)
        {
            foreach (var content in contents)
            {
                if (called)
                {
                    return;
                }

                switch (content)
                {
                    case TextContent text when toolCalls!.MayStillBeToolCall && !toolCalls.SawToolCall:
                        // White space ahead of what may still be a call opens no message.
                        heldSpace.Append(text.Text);
                        break;
                    case TextContent text:
                        await ShowAsync(heldSpace.Append(text.Text).ToString()).ConfigureAwait(false);
                        heldSpace.Clear();
                        break;
                    case FunctionCallContent call:
                        called = true;
                        heldSpeech.Clear();
                        heldSpace.Clear();
                        await FinishMessageAsync().ConfigureAwait(false);
                        await EmitFunctionCallAsync(response, call, outputIndex: response.Started ? 1 : 0).ConfigureAwait(false);
                        break;
                    case ErrorContent invalid:
                        session.Logger.LogWarning("Realtime session {Session}: {Response}: {Message} ({Details})", session.IdPrefix, response.Id, invalid.Message, invalid.Details);
                        await session.EmitAsync(new ErrorRealtimeServerMessage { Error = invalid }).ConfigureAwait(false);
                        break;
                }
            }
        }

        // Ends the message item (once): when the answer ends, or when the model calls a function after some text.
        async Task FinishMessageAsync()
        {
            if (!response.Started || messageDone)
            {
                return;
            }

            messageDone = true;
            string said = response.Text;
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
    }

    /// <summary>
    /// The model's call as an output item of its own: announced with the function's name, then done with its arguments
    /// (the item <see cref="FunctionInvokingRealtimeClient"/> invokes), and kept in the conversation for the answer that
    /// goes on after its result. The parser holds a call until it closes, so the arguments come whole.
    /// </summary>
    private async Task EmitFunctionCallAsync(RealtimeResponse response, FunctionCallContent call, int outputIndex)
    {
        var entry = new ConversationEntry(session.NewId("item"), ChatRole.Assistant) { FunctionCall = call };
        if (response.Conversation.Contains(response.Answer))
        {
            response.Conversation.Add(entry);
        }

        session.Logger.LogDebug("Realtime session {Session}: {Response} calls {Function} ({Call}).", session.IdPrefix, response.Id, call.Name, call.CallId);
        await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ResponseOutputItemAdded)
        {
            ResponseId = response.Id,
            OutputIndex = outputIndex,
            Item = new RealtimeConversationItem([new FunctionCallContent(call.CallId, call.Name)], entry.Id, ChatRole.Assistant),
        }).ConfigureAwait(false);
        await session.EmitAsync(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ResponseOutputItemDone)
        {
            ResponseId = response.Id,
            OutputIndex = outputIndex,
            Item = new RealtimeConversationItem([call], entry.Id, ChatRole.Assistant),
        }).ConfigureAwait(false);
    }

    // The answer's item as OpenAI's events show it: its status and place in the conversation ride in its raw representation.
    private static RealtimeConversationItem AnswerItem(RealtimeResponse response, IList<AIContent> contents) =>
        new(contents, response.Answer.Id, ChatRole.Assistant)
        {
            RawRepresentation = new MiniOmniRealtimeItemDetails(response.Answer.Status, response.Conversation.PreviousId(response.Answer), response.Plan.Speaks),
        };
}
