using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// A realtime conversation with Mini-Omni over a shared engine. Input audio is converted to 16 kHz as it arrives and,
/// with turn detection on, watched by a <see cref="VoiceActivityDetector"/>; a turn is committed by the client or by the
/// end of speech, and answered as a stream of MEAI server messages. Speech that starts while an answer is generating
/// or playing cancels it and cuts it to what was heard. All engine work of the session (answers, then transcriptions
/// of the turns for later preambles) runs one item after another in the order asked; sessions share nothing but the engine.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class MiniOmniRealtimeSession : IRealtimeClientSession
{
    private const int InputRate = WhisperLogMel.SampleRate;
    private const int MinimumTurnSamples = InputRate / 10;
    private const int MaximumTurnSamples = WhisperLogMel.WindowSampleCount;

    private readonly IMiniOmniEngine _engine;
    private readonly MiniOmniRealtimeClientOptions _clientOptions;
    private readonly ChatClientMetadata _metadata;
    private readonly ILogger _logger;
    private readonly Channel<RealtimeServerMessage> _outbound = Channel.CreateUnbounded<RealtimeServerMessage>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();
    private readonly RealtimeConversation _conversation = new();
    private readonly string _idPrefix = Guid.NewGuid().ToString("N")[..8];
    private int _nextId;
    private int _disposed;
    private int _reading;

    // Everything below is touched only by the message being handled (under _gate).
    private readonly InputBuffer _buffer = new();
    private readonly List<VoiceActivityEvent> _changes = [];
    private readonly List<RealtimeResponse> _responses = [];
    private readonly List<ConversationEntry> _untranscribed = [];
    private RealtimeSessionSettings _settings;
    private RealtimeInputAudio _input;
    private VoiceActivityDetector? _detector;
    private long _detectorOrigin;
    private long _turnStart;
    private string? _speechItemId;
    private bool _overflowReported;
    private Task _work = Task.CompletedTask;

    public MiniOmniRealtimeSession(IMiniOmniEngine engine, RealtimeSessionSettings settings, MiniOmniRealtimeClientOptions clientOptions, ChatClientMetadata metadata, ILogger logger)
    {
        _engine = engine;
        _settings = settings;
        _clientOptions = clientOptions;
        _metadata = metadata;
        _logger = logger;
        _input = new RealtimeInputAudio(settings.Options.InputAudioFormat);
        _detector = settings.TurnDetection is { } detection ? new VoiceActivityDetector(detection, InputRate) : null;
    }

    /// <inheritdoc />
    public RealtimeSessionOptions? Options => _settings.Options;

    /// <inheritdoc />
    public async Task SendAsync(RealtimeClientMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            switch (message)
            {
                case InputAudioBufferAppendRealtimeClientMessage append:
                    await AppendAsync(append).ConfigureAwait(false);
                    break;
                case InputAudioBufferCommitRealtimeClientMessage:
                    CommitBuffer(respond: false);
                    break;
                case CreateResponseRealtimeClientMessage create:
                    CreateResponse(create);
                    break;
                case CreateConversationItemRealtimeClientMessage create:
                    AddItem(create);
                    break;
                case SessionUpdateRealtimeClientMessage update:
                    Update(update);
                    break;
                default:
                    throw new RealtimeRequestException(
                        RealtimeErrorCodes.UnsupportedMessage,
                        $"Mini-Omni realtime sessions do not handle {message.GetType().Name}{(message.RawRepresentation is null ? string.Empty : " (raw provider messages included)")}; " +
                        $"they take {nameof(InputAudioBufferAppendRealtimeClientMessage)}, {nameof(InputAudioBufferCommitRealtimeClientMessage)}, " +
                        $"{nameof(CreateResponseRealtimeClientMessage)}, {nameof(CreateConversationItemRealtimeClientMessage)} and {nameof(SessionUpdateRealtimeClientMessage)}.");
            }
        }
        catch (RealtimeRequestException e)
        {
            _logger.LogWarning("Realtime session {Session}: {Message}", _idPrefix, e.Message);
            Emit(new ErrorRealtimeServerMessage { Error = new ErrorContent(e.Message) { ErrorCode = e.ErrorCode }, OriginatingMessageId = message.MessageId });
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RealtimeServerMessage> GetStreamingResponseAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _reading, 1) != 0)
        {
            throw new InvalidOperationException("The session's messages are already being read; one reader at a time.");
        }

        try
        {
            await foreach (var message in _outbound.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return message;
            }
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _metadata, _engine, this);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Cancels the answer and any queued work; the message being handled, if any, ends with it.
        _lifetime.Cancel();
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await _work.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Realtime session {Session}: its work failed while closing.", _idPrefix);
        }
        finally
        {
            _gate.Release();
        }

        _outbound.Writer.TryComplete();
        _lifetime.Dispose();
    }

    private async Task AppendAsync(InputAudioBufferAppendRealtimeClientMessage append)
    {
        var content = append.Content ?? throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, "The append message carries no audio content.");
        float[] samples = _input.Append(content);
        _buffer.Append(samples);
        if (_detector is null)
        {
            KeepWithinOneTurn();
            return;
        }

        _changes.Clear();
        _detector.Process(samples, _changes);
        foreach (var change in _changes)
        {
            if (change.Kind == VoiceActivityKind.SpeechStarted)
            {
                await SpeechStartedAsync(change).ConfigureAwait(false);
            }
            else
            {
                SpeechStopped(change);
            }
        }

        var detection = _settings.TurnDetection!;
        if (_detector.IsSpeaking)
        {
            // Mini-Omni hears at most 30 s: a longer turn is answered in 30 s parts.
            while (_buffer.End - _turnStart >= MaximumTurnSamples)
            {
                _logger.LogInformation("Realtime session {Session}: speech ran past 30 s; committing the first 30 s as a turn of its own.", _idPrefix);
                long end = _turnStart + MaximumTurnSamples;
                CommitTurn(_turnStart, end, _speechItemId!, detection.CreateResponse, fromDetector: true);
                _turnStart = end;
                _speechItemId = NewId("item");
            }
        }
        else
        {
            // Between turns only the prefix padding is kept, and enough for a start still being confirmed.
            var kept = detection.PrefixPadding + detection.MinimumSpeechDuration + VoiceActivityDetector.FrameDuration * 2;
            _buffer.DropBefore(_buffer.End - ToSamples(kept));
        }
    }

    private async Task SpeechStartedAsync(VoiceActivityEvent change)
    {
        _speechItemId = NewId("item");
        _turnStart = Math.Max(_buffer.Start, _detectorOrigin + change.TurnStart);
        Emit(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputSpeechStarted)
        {
            ItemId = _speechItemId,
            AudioPosition = ToTime(_detectorOrigin + change.SpeechPosition),
        });
        if (_settings.TurnDetection!.AllowInterruption)
        {
            await InterruptAsync().ConfigureAwait(false);
        }
    }

    private void SpeechStopped(VoiceActivityEvent change)
    {
        string itemId = _speechItemId ?? NewId("item");
        _speechItemId = null;
        Emit(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputSpeechStopped)
        {
            ItemId = itemId,
            AudioPosition = ToTime(_detectorOrigin + change.SpeechPosition),
        });
        CommitTurn(_turnStart, _detectorOrigin + change.DetectedAt, itemId, _settings.TurnDetection!.CreateResponse, fromDetector: true);
    }

    /// <summary>Barge-in: cancels every answer still generating, waits for their done messages, and cuts the one being heard to what was heard.</summary>
    private async Task InterruptAsync()
    {
        var now = _clientOptions.TimeProvider.GetUtcNow();
        _responses.RemoveAll(r => r.IsOver(now));
        if (_responses.Count == 0)
        {
            return;
        }

        var interrupted = _responses.ToArray();
        _responses.Clear();
        foreach (var response in interrupted)
        {
            response.Cancel();
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
            _logger.LogDebug("Realtime session {Session}: {Response} interrupted after {Heard} of {Total} heard.", _idPrefix, response.Id, heard, response.AudioDuration);
            Emit(new AnswerTruncatedRealtimeServerMessage { ResponseId = response.Id, ItemId = response.Answer.Id, AudioEnd = heard, Text = kept });
        }
    }

    private void CommitBuffer(bool respond)
    {
        string itemId = _detector?.IsSpeaking == true && _speechItemId is not null ? _speechItemId : NewId("item");
        long start = _detector?.IsSpeaking == true ? Math.Min(_turnStart, _buffer.End) : _buffer.Start;
        CommitTurn(Math.Max(start, _buffer.Start), _buffer.End, itemId, respond, fromDetector: false);
        _detector?.Reset();
        _speechItemId = null;
    }

    private void CommitTurn(long start, long end, string itemId, bool respond, bool fromDetector)
    {
        float[] audio = _buffer.Slice(start, end);
        if (audio.Length < MinimumTurnSamples)
        {
            if (fromDetector)
            {
                _logger.LogDebug("Realtime session {Session}: a detected turn of {Samples} samples is too short to answer; dropped.", _idPrefix, audio.Length);
                return;
            }

            throw new RealtimeRequestException(
                RealtimeErrorCodes.EmptyInputAudioBuffer,
                $"The input audio buffer holds {audio.Length * 1000 / InputRate} ms of audio; committing a turn needs at least {MinimumTurnSamples * 1000 / InputRate} ms.");
        }

        _buffer.DropBefore(end);
        _overflowReported = false;
        var entry = new ConversationEntry(itemId, ChatRole.User) { Audio = audio };
        _conversation.Add(entry);
        _logger.LogDebug("Realtime session {Session}: committed {Item}, {Seconds:F2} s of speech.", _idPrefix, itemId, audio.Length / (double)InputRate);
        Emit(new InputSpeechRealtimeServerMessage(MiniOmniRealtimeServerMessageTypes.InputAudioCommitted) { ItemId = itemId, AudioPosition = ToTime(end) });
        Emit(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ConversationItemAdded)
        {
            Item = new RealtimeConversationItem([new DataContent(ToWav(audio), MiniOmniMediaTypes.Wav)], itemId, ChatRole.User),
        });

        if (_settings.Transcribes)
        {
            Enqueue(previous => TranscribeAsync(entry, previous));
        }
        else if (respond)
        {
            CreateResponse(null);
        }
        else if (_clientOptions.TranscribeUserSpeech)
        {
            _untranscribed.Add(entry);
        }
    }

    private void KeepWithinOneTurn()
    {
        if (_buffer.Count <= MaximumTurnSamples)
        {
            return;
        }

        _buffer.DropBefore(_buffer.End - MaximumTurnSamples);
        if (!_overflowReported)
        {
            _overflowReported = true;
            _logger.LogWarning("Realtime session {Session}: over 30 s of audio appended without a commit; Mini-Omni hears at most 30 s, so the oldest is dropped.", _idPrefix);
        }
    }

    private void CreateResponse(CreateResponseRealtimeClientMessage? request)
    {
        if (_settings.Transcribes)
        {
            throw new RealtimeRequestException(
                RealtimeErrorCodes.UnsupportedMessage,
                "This is a transcription session: it transcribes committed audio and does not answer. Create a conversation session to get answers.");
        }

        if (request?.Tools is { Count: > 0 })
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, $"The response names {request.Tools.Count} tool(s), but Mini-Omni cannot call tools; leave Tools empty.");
        }

        bool speaks = RealtimeSessionSettings.SpeaksFor(request?.OutputModalities, "the response's OutputModalities") ?? _settings.Speaks;
        int outputRate = RealtimeSessionSettings.OutputRateOf(request?.OutputAudioOptions, "the response's OutputAudioOptions") ?? _settings.OutputSampleRate;
        if (request?.MaxOutputTokens is <= 0)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, $"The response's MaxOutputTokens is {request.MaxOutputTokens}; it must be at least 1, or unset.");
        }

        int maxTokens = request?.MaxOutputTokens ?? _settings.Options.MaxOutputTokens ?? 0;

        var plan = new ResponsePlan(speaks, request?.Instructions ?? _settings.Options.Instructions, maxTokens, outputRate);
        var conversation = _conversation;
        bool keep = request?.ExcludeFromConversation != true;
        if (request?.Items is { Count: > 0 } items)
        {
            // Out of band: the answer hears only these items and stays out of the session's conversation.
            conversation = new RealtimeConversation();
            foreach (var item in items)
            {
                conversation.Add(ToEntry(item));
            }

            keep = false;
        }
        else if (_detector is null && _buffer.Count > 0 && !_conversation.HasQuestion)
        {
            CommitBuffer(respond: false);
        }

        var question = conversation.TakeQuestion() ?? throw new RealtimeRequestException(
            RealtimeErrorCodes.NothingToAnswer,
            "There is no user turn to answer: append audio and commit it (or let turn detection commit it), or add a user item, before asking for a response.");
        _untranscribed.Remove(question);
        var answer = new ConversationEntry(NewId("item"), ChatRole.Assistant);
        if (keep)
        {
            conversation.Add(answer);
        }

        var response = new RealtimeResponse(NewId("resp"), question, answer, conversation, plan, _lifetime.Token);
        _responses.RemoveAll(r => r.IsOver(_clientOptions.TimeProvider.GetUtcNow()));
        _responses.Add(response);
        Emit(new ResponseCreatedRealtimeServerMessage(RealtimeServerMessageType.ResponseCreated)
        {
            ResponseId = response.Id,
            OutputModalities = [speaks ? "audio" : "text"],
            OutputAudioOptions = speaks ? new RealtimeAudioFormat("audio/pcm", outputRate) : null,
            MaxOutputTokens = maxTokens > 0 ? maxTokens : null,
            AdditionalProperties = request?.AdditionalProperties,
        });

        // Earlier spoken turns are transcribed first, as the answer's preamble shows them; its own turn after it, to keep it quick.
        foreach (var earlier in _untranscribed)
        {
            Enqueue(previous => TranscribeAsync(earlier, previous));
        }

        _untranscribed.Clear();
        Enqueue(previous => response.Completion = AnswerAsync(response, previous));
        if (question.Audio is not null && question.Text is null && _clientOptions.TranscribeUserSpeech && conversation == _conversation)
        {
            Enqueue(previous => TranscribeAsync(question, previous));
        }
    }

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
                Preamble = response.Conversation.RenderPreamble(plan.Instructions, question, _clientOptions.HistoryCharacterBudget),
                BatchParallel = _clientOptions.BatchParallel && question.Audio is not null && plan.Speaks,
                Sampling = _clientOptions.Sampling,
                MaxTokens = plan.MaxTokens,
            };

            response.Started = true;
            Emit(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ResponseOutputItemAdded)
            {
                ResponseId = response.Id,
                OutputIndex = 0,
                Item = new RealtimeConversationItem([], response.Answer.Id, ChatRole.Assistant),
            });
            await foreach (var update in _engine.GenerateAsync(request, token).ConfigureAwait(false))
            {
                switch (update)
                {
                    case TextDelta text:
                        response.AddText(text.Text);
                        Emit(Output(response, plan.Speaks ? RealtimeServerMessageType.OutputAudioTranscriptionDelta : RealtimeServerMessageType.OutputTextDelta, text: text.Text));
                        break;
                    case SpeechChunk speech when plan.Speaks:
                        if (outputResampler?.InputRate != speech.SampleRate)
                        {
                            outputResampler = new StreamingResampler(speech.SampleRate, plan.OutputSampleRate);
                        }

                        float[] samples = outputResampler.Resample(speech.Samples);
                        if (samples.Length > 0)
                        {
                            response.AddAudio(samples.Length, _clientOptions.TimeProvider.GetUtcNow());
                            Emit(Output(response, RealtimeServerMessageType.OutputAudioDelta, audio: Convert.ToBase64String(MiniOmniMediaTypes.EncodeSpeechChunk(samples))));
                        }

                        break;
                    case AnswerCompleted completed:
                        usage = new UsageDetails
                        {
                            InputTokenCount = completed.PromptTokens,
                            OutputTokenCount = completed.Steps,
                            TotalTokenCount = completed.PromptTokens + completed.Steps,
                        };
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
            _logger.LogError(e, "Realtime session {Session}: {Response} failed.", _idPrefix, response.Id);
            Emit(new ErrorRealtimeServerMessage { Error = error });
        }

        string said = response.Text;
        if (response.Started)
        {
            response.Conversation.SetText(response.Answer, said);
            if (plan.Speaks)
            {
                Emit(Output(response, RealtimeServerMessageType.OutputAudioDone));
                Emit(Output(response, RealtimeServerMessageType.OutputAudioTranscriptionDone, text: said));
            }
            else
            {
                Emit(Output(response, RealtimeServerMessageType.OutputTextDone, text: said));
            }

            Emit(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ResponseOutputItemDone)
            {
                ResponseId = response.Id,
                OutputIndex = 0,
                Item = new RealtimeConversationItem([new TextContent(said)], response.Answer.Id, ChatRole.Assistant),
            });
        }

        Emit(new ResponseCreatedRealtimeServerMessage(RealtimeServerMessageType.ResponseDone)
        {
            ResponseId = response.Id,
            Status = status,
            Usage = usage,
            Error = error,
            OutputModalities = [plan.Speaks ? "audio" : "text"],
        });
        _logger.LogDebug("Realtime session {Session}: {Response} {Status}.", _idPrefix, response.Id, status);
        response.Finish();
    }

    private async Task TranscribeAsync(ConversationEntry entry, Task previous)
    {
        var token = _lifetime.Token;
        try
        {
            await Task.Yield();
            await previous.WaitAsync(token).ConfigureAwait(false);
            var text = new StringBuilder();
            UsageDetails? usage = null;
            var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = entry.Audio, MaxTokens = _clientOptions.TranscriptionMaxTokens };
            await foreach (var update in _engine.GenerateAsync(request, token).ConfigureAwait(false))
            {
                if (update is TextDelta delta)
                {
                    text.Append(delta.Text);
                    Emit(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionDelta) { ItemId = entry.Id, ContentIndex = 0, Transcription = delta.Text });
                }
                else if (update is AnswerCompleted completed)
                {
                    usage = new UsageDetails { InputTokenCount = completed.PromptTokens, OutputTokenCount = completed.Steps, TotalTokenCount = completed.PromptTokens + completed.Steps };
                }
            }

            string transcript = text.ToString().Trim();
            _conversation.SetText(entry, transcript);
            Emit(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionCompleted)
            {
                ItemId = entry.Id,
                ContentIndex = 0,
                Transcription = transcript,
                Usage = usage,
            });
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The session is closing.
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Realtime session {Session}: transcribing {Item} failed.", _idPrefix, entry.Id);
            Emit(new InputAudioTranscriptionRealtimeServerMessage(RealtimeServerMessageType.InputAudioTranscriptionFailed)
            {
                ItemId = entry.Id,
                ContentIndex = 0,
                Error = new ErrorContent($"Transcribing the turn failed: {e.Message}") { ErrorCode = RealtimeErrorCodes.TranscriptionFailed },
            });
        }
    }

    private void AddItem(CreateConversationItemRealtimeClientMessage create)
    {
        var item = create.Item ?? throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, "The conversation item message carries no item.");
        var entry = ToEntry(item);
        _conversation.Add(entry);
        if (entry.Role == ChatRole.User && entry.Audio is not null && entry.Text is null && _clientOptions.TranscribeUserSpeech)
        {
            _untranscribed.Add(entry);
        }

        Emit(new ResponseOutputItemRealtimeServerMessage(RealtimeServerMessageType.ConversationItemAdded)
        {
            Item = new RealtimeConversationItem(item.Contents, entry.Id, entry.Role),
        });
    }

    /// <summary>A client's conversation item as a turn: its text, and for a user its audio (a text part beside audio is taken as its transcript).</summary>
    private ConversationEntry ToEntry(RealtimeConversationItem item)
    {
        var role = item.Role ?? throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"Conversation item '{item.Id}' has no role; give it User, Assistant or System.");
        if (role != ChatRole.User && role != ChatRole.Assistant && role != ChatRole.System)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"Conversation item '{item.Id}' has the role '{role}'; Mini-Omni conversations have User, Assistant and System turns.");
        }

        var text = new StringBuilder();
        float[]? audio = null;
        foreach (var content in item.Contents ?? [])
        {
            switch (content)
            {
                case TextContent part:
                    text.Append(part.Text);
                    break;
                case DataContent data when data.HasTopLevelMediaType("audio"):
                    if (role == ChatRole.User)
                    {
                        var samples = RealtimeInputAudio.DecodeWhole(data, _settings.Options.InputAudioFormat);
                        audio = audio is null ? samples : [.. audio, .. samples];
                    }

                    break;
                default:
                    throw new RealtimeRequestException(
                        RealtimeErrorCodes.UnsupportedContent,
                        $"Conversation item '{item.Id}' holds {content.GetType().Name}{(content is DataContent d ? $" ({d.MediaType})" : string.Empty)}; Mini-Omni turns hold text and, for the user, audio. It cannot call tools.");
            }
        }

        if (audio is { Length: > MaximumTurnSamples })
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, $"Conversation item '{item.Id}' holds {audio.Length / (double)InputRate:F1} s of audio; Mini-Omni hears at most 30 s.");
        }

        if (audio is null && text.Length == 0)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedContent, $"Conversation item '{item.Id}' has neither text nor audio.");
        }

        return new ConversationEntry(item.Id ?? NewId("item"), role) { Audio = audio, Text = text.Length > 0 ? text.ToString() : null };
    }

    private void Update(SessionUpdateRealtimeClientMessage update)
    {
        var options = update.Options ?? throw new RealtimeRequestException(RealtimeErrorCodes.InvalidSessionOptions, "The session update carries no options.");
        var settings = RealtimeSessionSettings.From(options);
        var previous = _settings.Options.InputAudioFormat;
        if (previous?.MediaType != options.InputAudioFormat?.MediaType || previous?.SampleRate != options.InputAudioFormat?.SampleRate)
        {
            _input = new RealtimeInputAudio(options.InputAudioFormat);
        }

        if (!SameDetection(_settings.TurnDetection, settings.TurnDetection))
        {
            // The new detector starts listening here; a turn in progress is left to the client to commit.
            _detector = settings.TurnDetection is { } detection ? new VoiceActivityDetector(detection, InputRate) : null;
            _detectorOrigin = _buffer.End;
            _speechItemId = null;
        }

        _settings = settings;
    }

    private static bool SameDetection(MiniOmniVoiceActivityDetectionOptions? a, MiniOmniVoiceActivityDetectionOptions? b) =>
        a is null || b is null ? a is null && b is null :
        a.ThresholdDb == b.ThresholdDb && a.HysteresisDb == b.HysteresisDb && a.MinimumSpeechDuration == b.MinimumSpeechDuration &&
        a.SilenceDuration == b.SilenceDuration && a.PrefixPadding == b.PrefixPadding;

    /// <summary>Queues engine work after all work queued before; a step cancelled while it waits still leaves the queue in order.</summary>
    private void Enqueue(Func<Task, Task> step)
    {
        var previous = _work;
        _work = Task.WhenAll(previous, step(previous));
    }

    private void Emit(RealtimeServerMessage message) => _outbound.Writer.TryWrite(message);

    private static OutputTextAudioRealtimeServerMessage Output(RealtimeResponse response, RealtimeServerMessageType type, string? text = null, string? audio = null) => new(type)
    {
        ResponseId = response.Id,
        ItemId = response.Answer.Id,
        OutputIndex = 0,
        ContentIndex = 0,
        Text = text,
        Audio = audio,
    };

    private string NewId(string kind) => $"{kind}_{_idPrefix}{Interlocked.Increment(ref _nextId)}";

    private static TimeSpan ToTime(long samples) => TimeSpan.FromTicks(samples * TimeSpan.TicksPerSecond / InputRate);

    private static long ToSamples(TimeSpan duration) => (long)Math.Round(duration.TotalSeconds * InputRate);

    private static byte[] ToWav(float[] samples)
    {
        using var wav = new MemoryStream();
        Pcm16Wave.Write(wav, samples, InputRate);
        return wav.ToArray();
    }

    /// <summary>The input audio not yet committed, at 16 kHz, addressed by position from the session's first sample.</summary>
    private sealed class InputBuffer
    {
        private float[] _samples = new float[InputRate];

        /// <summary>The position of the oldest sample kept.</summary>
        public long Start { get; private set; }

        /// <summary>Samples kept.</summary>
        public int Count { get; private set; }

        /// <summary>The position after the newest sample.</summary>
        public long End => Start + Count;

        public void Append(ReadOnlySpan<float> samples)
        {
            if (Count + samples.Length > _samples.Length)
            {
                Array.Resize(ref _samples, Math.Max(_samples.Length * 2, Count + samples.Length));
            }

            samples.CopyTo(_samples.AsSpan(Count));
            Count += samples.Length;
        }

        /// <summary>The samples from <paramref name="from"/> to <paramref name="to"/>, as far as they are kept.</summary>
        public float[] Slice(long from, long to)
        {
            from = Math.Clamp(from, Start, End);
            to = Math.Clamp(to, from, End);
            return _samples.AsSpan((int)(from - Start), (int)(to - from)).ToArray();
        }

        /// <summary>Forgets the samples before <paramref name="position"/>.</summary>
        public void DropBefore(long position)
        {
            int drop = (int)Math.Clamp(position - Start, 0, Count);
            if (drop == 0)
            {
                return;
            }

            _samples.AsSpan(drop, Count - drop).CopyTo(_samples);
            Count -= drop;
            Start += drop;
        }
    }
}
