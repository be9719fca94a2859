// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using Moq;
using static MiniOmni.SK.Connector.Tests.Realtime.Signals;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>Sessions over a scripted engine: what the engine is asked, and what the client is told, in what order.</summary>
public sealed class MiniOmniRealtimeSessionTests
{
    private static readonly RealtimeAudioFormat Pcm16k = new("audio/pcm", 16000);
    private static readonly RealtimeSessionOptions ManualTurns = Manual();
    private static readonly RealtimeSessionOptions DetectedTurns = Detected();

    private readonly ScriptedEngine _engine = new();
    private readonly ManualClock _clock = new();

    [Fact]
    public async Task ACommittedTurnIsAnsweredWithItsAudioAndTheInstructions()
    {
        var probe = await Open(Manual(instructions: "Be brief."));
        var question = Tone(8000, 0.3f);

        // Odd-sized chunks split samples between appends.
        byte[] pcm = MiniOmniMediaTypes.EncodeSpeechChunk(question);
        foreach (var piece in pcm.Chunk(999))
        {
            await probe.Send(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(piece, "audio/pcm")));
        }

        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var done = await probe.WaitForResponseDone();

        var request = Assert.Single(_engine.Answers).Request;
        Assert.Equal(MiniOmniTask.A1A2, request.Task);
        Assert.Equal(ThroughPcm16(question), request.Audio.ToArray());
        Assert.Equal("Be brief.\n", request.Preamble);
        Assert.Equal(
            [
                "InputAudioBufferCommitted", "ConversationItemAdded", "ResponseCreated", "ResponseOutputItemAdded", "ConversationItemAdded",
                "OutputAudioTranscriptionDelta", "OutputAudioDelta", "OutputAudioTranscriptionDelta", "OutputAudioDelta",
                "OutputAudioDone", "OutputAudioTranscriptionDone", "ResponseOutputItemDone", "ConversationItemDone", "ResponseDone",
            ],
            probe.Types);
        var audio = probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.OutputAudioDelta);
        byte[] expected = [.. ScriptedEngine.DefaultEvents.OfType<SpeechChunk>().SelectMany(c => MiniOmniMediaTypes.EncodeSpeechChunk(c.Samples))];
        Assert.Equal(expected, audio.SelectMany(m => Decode(m.Audio)).ToArray());
        var transcript = probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDone);
        Assert.Equal("Hello there", transcript.Text);
        Assert.Equal(RealtimeResponseStatus.Completed, done.Status);
        Assert.Equal(10, done.Usage?.InputTokenCount);
        Assert.Equal(5, done.Usage?.OutputTokenCount);
        Assert.Equal(15, done.Usage?.TotalTokenCount);
        var created = (ResponseCreatedRealtimeServerMessage)probe.Seen.Single(m => m.Type == RealtimeServerMessageType.ResponseCreated);
        Assert.Equal(created.ResponseId, done.ResponseId);
        var item = (ResponseOutputItemRealtimeServerMessage)probe.Seen.Single(m => m.Type == RealtimeServerMessageType.ResponseOutputItemDone);
        Assert.Equal(ChatRole.Assistant, item.Item?.Role);
        Assert.Equal("Hello there", Assert.IsType<TextContent>(Assert.Single(item.Item!.Contents)).Text);
    }

    [Fact]
    public async Task ATranscriptDecodedBesideItsAnswerNeverHoldsUpTheNextTurn()
    {
        var transcripts = new TaskCompletionSource();
        _engine.TranscribeBeside(transcripts.Task);
        var probe = await Open(Manual(instructions: "Be brief."));

        await AskManually(probe, Tone(8000, 0.3f));
        // The first turn's transcript is still being decoded (held back): the next turn is answered all the same.
        await AskManually(probe, Tone(4000, 0.3f));

        // One engine request per turn, which encodes the question once and brings its transcript: no request of its own.
        Assert.Equal(2, _engine.Answers.Count);
        Assert.Empty(_engine.Transcriptions);
        Assert.All(_engine.Answers, answer => Assert.NotNull(answer.Request.Transcription));
        Assert.DoesNotContain("InputAudioTranscriptionCompleted", probe.Types);
        Assert.Equal("Be brief.\nUser: [speech]\nAssistant: Hello there\n", _engine.Answers[1].Request.Preamble);

        transcripts.SetResult();
        var first = await probe.WaitFor<InputAudioTranscriptionRealtimeServerMessage>(RealtimeServerMessageType.InputAudioTranscriptionCompleted);
        var second = await probe.WaitFor<InputAudioTranscriptionRealtimeServerMessage>(RealtimeServerMessageType.InputAudioTranscriptionCompleted);
        var committed = probe.Seen.Where(m => m.Type == MiniOmniRealtimeServerMessageTypes.InputAudioCommitted).Select(m => ((InputSpeechRealtimeServerMessage)m).ItemId).ToList();
        Assert.Equal(committed.Order(), new[] { first.ItemId, second.ItemId }.Order());
        Assert.Equal("what time is it", first.Transcription);
        await AskManually(probe, Tone(4000, 0.3f));
        Assert.Equal("Be brief.\nUser: what time is it\nAssistant: Hello there\nUser: what time is it\nAssistant: Hello there\n", _engine.Answers[2].Request.Preamble);
    }

    [Fact]
    public async Task TheTurnIsTranscribedAfterItsAnswerAndTheNextTurnSeesBoth()
    {
        var probe = await Open(Manual(instructions: "Be brief."));

        await AskManually(probe, Tone(8000, 0.3f));
        var transcription = await probe.WaitFor<InputAudioTranscriptionRealtimeServerMessage>(RealtimeServerMessageType.InputAudioTranscriptionCompleted);
        await AskManually(probe, Tone(4000, 0.3f));

        var committed = (InputSpeechRealtimeServerMessage)probe.Seen.First(m => m.Type == MiniOmniRealtimeServerMessageTypes.InputAudioCommitted);
        Assert.Equal(committed.ItemId, transcription.ItemId);
        Assert.Equal("what time is it", transcription.Transcription);
        Assert.Equal(8000, _engine.Transcriptions[0].Audio.Length);
        Assert.Equal(2, _engine.Answers.Count);
        Assert.Equal("Be brief.\nUser: what time is it\nAssistant: Hello there\n", _engine.Answers[1].Request.Preamble);
    }

    [Fact]
    public async Task AudioAtAnotherRateIsResampledTo16kHz()
    {
        var probe = await Open(Manual(input: new RealtimeAudioFormat("audio/pcm", 24000)));

        await probe.AppendPcm(Tone(24000, 0.5f, rate: 24000), rate: 24000, chunkMs: 30);
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();

        float[] heard = _engine.Answers[0].Request.Audio.ToArray();
        Assert.Equal(16000, heard.Length);
        int crossings = heard.Zip(heard.Skip(1), (a, b) => a < 0 != b < 0 ? 1 : 0).Sum();
        Assert.InRange(crossings, 876, 884); // 440 Hz for one second
    }

    [Fact]
    public async Task AWavAppendIsDecodedWhole()
    {
        var probe = await Open(ManualTurns);

        await probe.Send(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(MiniOmniMediaTypes.EncodeWav(Tone(12000, 0.3f, rate: 24000)), MiniOmniMediaTypes.Wav)));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();

        Assert.Equal(8000, _engine.Answers[0].Request.Audio.Length);
    }

    [Fact]
    public async Task TextModalityAnswersInTextAlone()
    {
        var probe = await Open(Manual(modalities: ["text"]));

        await AskManually(probe, Tone(8000, 0.3f));
        await AskManually(probe, Tone(8000, 0.3f), new CreateResponseRealtimeClientMessage { OutputModalities = ["audio", "text"] });

        Assert.Equal([MiniOmniTask.A1T2, MiniOmniTask.A1A2], _engine.Answers.Select(a => a.Request.Task));
        var first = probe.Types.TakeWhile(t => t != "ResponseDone").ToList();
        Assert.Equal(["OutputTextDelta", "OutputTextDelta"], first.Where(t => t.StartsWith("Output", StringComparison.Ordinal) && t.EndsWith("Delta", StringComparison.Ordinal)));
        Assert.Contains("OutputTextDone", first);
        Assert.DoesNotContain("OutputAudioDelta", first);
        Assert.Contains("OutputAudioDelta", probe.Types.SkipWhile(t => t != "ResponseDone").Skip(1));
    }

    [Fact]
    public async Task ATypedUserTurnIsAskedAsText()
    {
        var probe = await Open(ManualTurns);

        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("What is your name?")], "typed", ChatRole.User)));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();

        var request = _engine.Answers[0].Request;
        Assert.Equal(MiniOmniTask.T1A2, request.Task);
        Assert.Equal("What is your name?", request.Text);
        Assert.Empty(_engine.Transcriptions);
        Assert.Equal("typed", ((ResponseOutputItemRealtimeServerMessage)probe.Seen[0]).Item?.Id);
    }

    [Fact]
    public async Task DetectedEndOfSpeechCommitsTheTurnWithItsPaddingAndAnswersIt()
    {
        var probe = await Open(DetectedTurns);
        var signal = Concat(Silence(0.5), Tone(16000, 0.1f), Silence(1));

        await probe.AppendPcm(signal);
        await probe.WaitForResponseDone();

        Assert.Equal(
            ["InputAudioBufferSpeechStarted", "InputAudioBufferSpeechStopped", "InputAudioBufferCommitted", "ConversationItemAdded", "ResponseCreated"],
            probe.Types.Take(5));
        var started = (InputSpeechRealtimeServerMessage)probe.Seen[0];
        var stopped = (InputSpeechRealtimeServerMessage)probe.Seen[1];
        var committed = (InputSpeechRealtimeServerMessage)probe.Seen[2];
        Assert.Equal(TimeSpan.FromSeconds(0.5), started.AudioPosition);
        Assert.Equal(TimeSpan.FromSeconds(1.5), stopped.AudioPosition);
        Assert.Equal(TimeSpan.FromSeconds(2.0), committed.AudioPosition);
        Assert.Equal(started.ItemId, committed.ItemId);
        // From the 300 ms prefix padding before speech to the 500 ms of silence that ended it.
        Assert.Equal(ThroughPcm16(signal)[3200..32000], _engine.Answers[0].Request.Audio.ToArray());
    }

    [Fact]
    public async Task DetectedTurnsWaitForAResponseRequestWhenTheSessionSaysSo()
    {
        var probe = await Open(Detected(new MiniOmniVoiceActivityDetectionOptions { CreateResponse = false }));

        await probe.AppendPcm(Concat(Silence(0.5), Tone(16000, 0.1f), Silence(1)));
        await probe.WaitFor(MiniOmniRealtimeServerMessageTypes.InputAudioCommitted);
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();

        Assert.Equal(28800, _engine.Answers[0].Request.Audio.Length);
    }

    [Fact]
    public async Task SpeakingOverAGeneratingAnswerCancelsItAndKeepsWhatWasHeard()
    {
        var probe = await Open(DetectedTurns);
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("One two three four"), ScriptedEngine.Speech(24000, 0.2f)], hold: new TaskCompletionSource().Task));

        await probe.AppendPcm(Concat(Silence(0.5), Tone(8000, 0.1f), Silence(0.6)));
        await probe.WaitFor(RealtimeServerMessageType.OutputAudioDelta);
        int before = probe.Seen.Count;
        _clock.Advance(TimeSpan.FromSeconds(0.5));
        await probe.AppendPcm(Tone(3200, 0.1f));
        var truncated = await probe.WaitFor<AnswerTruncatedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.AnswerTruncated);

        var (_, token) = _engine.Answers[0];
        Assert.True(token.IsCancellationRequested);
        // The turn before is transcribed as soon as its answer ends, so those messages may come in between.
        Assert.Equal(
            ["InputAudioBufferSpeechStarted", "OutputAudioDone", "OutputAudioTranscriptionDone", "ResponseOutputItemDone", "ConversationItemDone", "ResponseDone", "ConversationItemTruncated"],
            probe.Types[before..].Where(t => !t.StartsWith("InputAudioTranscription", StringComparison.Ordinal)));
        var done = probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.ResponseDone);
        Assert.Equal(RealtimeResponseStatus.Cancelled, done.Status);
        Assert.Null(done.Usage);
        Assert.Equal(done.ResponseId, truncated.ResponseId);
        Assert.Equal(TimeSpan.FromSeconds(0.5), truncated.AudioEnd);
        Assert.Equal("One two", truncated.Text);

        // The new turn is answered with the cut answer in its history.
        await probe.AppendPcm(Silence(0.6));
        await probe.WaitForResponseDone();
        Assert.Equal(2, _engine.Answers.Count);
        Assert.False(_engine.Answers[1].Token.IsCancellationRequested);
        Assert.Equal("User: what time is it\nAssistant: One two\n", _engine.Answers[1].Request.Preamble);
    }

    [Fact]
    public async Task SpeakingOverAPlayingAnswerCutsItWithoutCancellingAnything()
    {
        var probe = await Open(DetectedTurns);
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("Alpha beta gamma delta"), ScriptedEngine.Speech(24000, 0.2f), ScriptedEngine.Completed(10, 30)]));

        await probe.AppendPcm(Concat(Silence(0.5), Tone(8000, 0.1f), Silence(0.6)));
        var done = await probe.WaitForResponseDone();
        _clock.Advance(TimeSpan.FromSeconds(0.5));
        await probe.AppendPcm(Tone(3200, 0.1f));
        var truncated = await probe.WaitFor<AnswerTruncatedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.AnswerTruncated);

        Assert.Equal(RealtimeResponseStatus.Completed, done.Status);
        Assert.Equal(["InputAudioBufferSpeechStarted", "ConversationItemTruncated"], probe.Types.SkipWhile(t => t != "ResponseDone").Skip(1).Where(t => !t.StartsWith("InputAudioTranscription", StringComparison.Ordinal)));
        Assert.Equal(TimeSpan.FromSeconds(0.5), truncated.AudioEnd);
        Assert.Equal("Alpha beta", truncated.Text);
    }

    [Fact]
    public async Task SpeakingAfterTheAnswerHasPlayedInterruptsNothing()
    {
        var probe = await Open(DetectedTurns);

        await probe.AppendPcm(Concat(Silence(0.5), Tone(8000, 0.1f), Silence(0.6)));
        await probe.WaitForResponseDone();
        _clock.Advance(TimeSpan.FromSeconds(1));
        await probe.AppendPcm(Concat(Tone(8000, 0.1f), Silence(0.6)));
        await probe.WaitForResponseDone();

        Assert.DoesNotContain("ConversationItemTruncated", probe.Types);
        Assert.Equal("User: what time is it\nAssistant: Hello there\n", _engine.Answers[1].Request.Preamble);
    }

    [Fact]
    public async Task WithoutInterruptionsTheAnswerRunsOnAndTheNewTurnWaitsForIt()
    {
        var probe = await Open(Detected(new MiniOmniVoiceActivityDetectionOptions { AllowInterruption = false }));
        var release = new TaskCompletionSource();
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("Still talking")], release.Task, [ScriptedEngine.Completed(10, 3)]));

        await probe.AppendPcm(Concat(Silence(0.5), Tone(8000, 0.1f), Silence(0.6)));
        await probe.WaitFor(RealtimeServerMessageType.OutputAudioTranscriptionDelta);
        await probe.AppendPcm(Concat(Tone(8000, 0.1f), Silence(0.6)));
        await probe.WaitFor(MiniOmniRealtimeServerMessageTypes.InputAudioCommitted);
        Assert.False(_engine.Answers[0].Token.IsCancellationRequested);
        Assert.Single(_engine.Answers);
        release.SetResult();
        var first = await probe.WaitForResponseDone();
        var second = await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Completed, first.Status);
        Assert.Equal(RealtimeResponseStatus.Completed, second.Status);
        Assert.DoesNotContain("ConversationItemTruncated", probe.Types);
        // The first turn's transcript is not waited for: this engine does not transcribe beside the answer, so the turn is
        // transcribed on its own after its answer, and the next answer was queued before that.
        Assert.Equal("User: [speech]\nAssistant: Still talking\n", _engine.Answers[1].Request.Preamble);
    }

    [Fact]
    public async Task DetectedSpeechLongerThan30SecondsIsAnsweredIn30SecondParts()
    {
        var probe = await Open(Detected());

        await probe.AppendPcm(Concat(Tone(31 * 16000, 0.1f), Silence(0.6)), chunkMs: 500);
        await probe.WaitForResponseDone();
        await probe.WaitForResponseDone();

        Assert.Equal([30 * 16000, 24000], _engine.Answers.Select(a => a.Request.Audio.Length));
        Assert.False(_engine.Answers[0].Token.IsCancellationRequested);
    }

    [Fact]
    public async Task WithoutDetectionTheBufferKeepsTheLast30Seconds()
    {
        var probe = await Open(ManualTurns);
        var speech = Concat(Silence(2), Tone(30 * 16000, 0.1f));

        await AskManually(probe, speech);

        Assert.Equal(ThroughPcm16(speech)[32000..], _engine.Answers[0].Request.Audio.ToArray());
    }

    [Fact]
    public async Task TheMessagesHaveOneReaderAtATime()
    {
        var probe = await Open(ManualTurns);
        await probe.Send(new PingMessage());
        await probe.WaitFor(RealtimeServerMessageType.Error); // the probe is reading

        var second = Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await foreach (var message in probe.Session.GetStreamingResponseAsync())
            {
            }
        });

        Assert.Contains("one reader", (await second).Message);
    }

    [Fact]
    public async Task AnAnswerThatReachesItsBudgetIsIncomplete()
    {
        var probe = await Open(Manual(maxOutputTokens: 5));

        await AskManually(probe, Tone(8000, 0.3f));

        Assert.Equal(RealtimeResponseStatus.Incomplete, ((ResponseCreatedRealtimeServerMessage)probe.Seen.Last(m => m.Type == RealtimeServerMessageType.ResponseDone)).Status);
        Assert.Equal(5, _engine.Answers[0].Request.MaxTokens);
    }

    [Fact]
    public async Task DisposingTheSessionCancelsItsAnswerAndEndsItsStream()
    {
        var probe = await Open(ManualTurns);
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("Never")], hold: new TaskCompletionSource().Task));

        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitFor(RealtimeServerMessageType.OutputAudioTranscriptionDelta);
        await probe.Session.DisposeAsync();
        await probe.ReadToEnd();

        Assert.True(_engine.Answers[0].Token.IsCancellationRequested);
        Assert.Equal(RealtimeResponseStatus.Cancelled, ((ResponseCreatedRealtimeServerMessage)probe.Seen.Last()).Status);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => probe.Send(new InputAudioBufferCommitRealtimeClientMessage()));
    }

    [Fact]
    public async Task SessionsOverOneEngineHearOnlyTheirOwnTurns()
    {
        _engine.Mock.Setup(e => e.GenerateAsync(It.Is<MiniOmniRequest>(r => r.Task != MiniOmniTask.Asr), It.IsAny<CancellationToken>()))
            .Returns((MiniOmniRequest request, CancellationToken token) => ScriptedEngine.Play(token, [new TextDelta($"{request.Preamble!.Trim()}:{request.Audio.Length}"), ScriptedEngine.Speech(240, 0.1f), ScriptedEngine.Completed(1, 1)]));
        var sessions = new[] { ("first", 8000), ("second", 12000), ("third", 4000) };

        var transcripts = await Task.WhenAll(sessions.Select(s => Task.Run(async () =>
        {
            var probe = await Open(Manual(instructions: s.Item1));
            var said = new List<string?>();
            for (int turn = 0; turn < 2; turn++)
            {
                await AskManually(probe, Tone(s.Item2 + turn * 1600, 0.3f));
                said.Add(((OutputTextAudioRealtimeServerMessage)probe.Seen.Last(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDone)).Text);
            }

            await probe.Session.DisposeAsync();
            return said;
        })));

        for (int i = 0; i < sessions.Length; i++)
        {
            var (name, samples) = sessions[i];
            Assert.Equal($"{name}:{samples}", transcripts[i][0]);
            Assert.StartsWith($"{name}\nUser: ", transcripts[i][1]);
            Assert.EndsWith($"Assistant: {name}:{samples}:{samples + 1600}", transcripts[i][1]);
        }
    }

    [Fact]
    public async Task AMessageTypeItDoesNotHandleIsAnErrorMessage()
    {
        var probe = await Open(ManualTurns);

        await probe.Send(new PingMessage { MessageId = "ping-1" });
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);

        Assert.Equal("ping-1", error.OriginatingMessageId);
        Assert.Equal("unsupported_message", error.Error?.ErrorCode);
        Assert.Contains(nameof(PingMessage), error.Error?.Message);
        await AskManually(probe, Tone(8000, 0.3f));
        Assert.Single(_engine.Answers);
    }

    [Theory]
    [InlineData("audio/ogg", "appended audio (audio/ogg)")]
    [InlineData("audio/g729", "'audio/g729'")]
    [InlineData("audio/pcm;encoding=mulaw", "'mulaw'")]
    [InlineData("audio/pcm;rate=fast", "'rate'")]
    [InlineData("audio/wav", "appended audio (audio/wav)")]
    public async Task AudioItCannotHearIsAnErrorNamingWhatWasWrong(string mediaType, string named)
    {
        var probe = await Open(ManualTurns);

        await probe.Send(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(new byte[64], mediaType)) { MessageId = "bad" });
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);

        Assert.Equal("bad", error.OriginatingMessageId);
        Assert.Contains(named, error.Error?.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(_engine.Answers);
    }

    [Fact]
    public async Task CommittingOrAnsweringNothingIsAnError()
    {
        var probe = await Open(ManualTurns);

        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        var empty = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var nothing = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);
        await probe.AppendPcm(Tone(800, 0.3f));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        var tooShort = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);

        Assert.Equal("input_audio_buffer_commit_empty", empty.Error?.ErrorCode);
        Assert.Equal("nothing_to_answer", nothing.Error?.ErrorCode);
        Assert.Contains("50 ms", tooShort.Error?.Message);
        Assert.Empty(_engine.Answers);
    }

    [Fact]
    public async Task AFailedAnswerIsReportedAndTheSessionGoesOn()
    {
        var probe = await Open(ManualTurns);
        _engine.ThenAnswer((_, _) => throw new ArgumentException("A prompt of 900 positions does not fit the context."));

        await AskManually(probe, Tone(8000, 0.3f));
        await AskManually(probe, Tone(8000, 0.3f));

        var error = (ErrorRealtimeServerMessage)probe.Seen.First(m => m.Type == RealtimeServerMessageType.Error);
        Assert.Contains("does not fit the context", error.Error?.Message);
        var done = probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.ResponseDone).ToList();
        Assert.Equal([RealtimeResponseStatus.Failed, RealtimeResponseStatus.Completed], done.Select(d => d.Status));
        Assert.Equal("response_failed", done[0].Error?.ErrorCode);
    }

    [Fact]
    public async Task OptionsItCannotHonourAreRefusedByName()
    {
        var client = new MiniOmniRealtimeClient(_engine.Object);

        var tools = await Assert.ThrowsAsync<ArgumentException>(() => client.CreateSessionAsync(new RealtimeSessionOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")], ToolMode = ChatToolMode.RequireSpecific("two") }));
        var output = await Assert.ThrowsAsync<ArgumentException>(() => client.CreateSessionAsync(new RealtimeSessionOptions { OutputAudioFormat = new RealtimeAudioFormat("audio/opus", 48000) }));
        var modality = await Assert.ThrowsAsync<ArgumentException>(() => client.CreateSessionAsync(new RealtimeSessionOptions { OutputModalities = ["video"] }));
        var input = await Assert.ThrowsAsync<ArgumentException>(() => client.CreateSessionAsync(new RealtimeSessionOptions { InputAudioFormat = new RealtimeAudioFormat("audio/g729", 8000) }));

        Assert.Contains("'two'", tools.Message);
        Assert.Contains("audio/opus", output.Message);
        Assert.Contains("'video'", modality.Message);
        Assert.Contains("audio/g729", input.Message);
    }

    [Fact]
    public async Task ABadSessionUpdateIsAnErrorAndKeepsTheOptions()
    {
        var probe = await Open(DetectedTurns);

        await probe.Send(new SessionUpdateRealtimeClientMessage(new RealtimeSessionOptions { VoiceActivityDetection = new MiniOmniVoiceActivityDetectionOptions { ThresholdDb = 5 } }));
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);
        await probe.Send(new SessionUpdateRealtimeClientMessage(Manual(instructions: "Updated.")));
        await AskManually(probe, Tone(8000, 0.3f));

        Assert.Equal("invalid_session_options", error.Error?.ErrorCode);
        Assert.Contains(nameof(MiniOmniVoiceActivityDetectionOptions.ThresholdDb), error.Error?.Message);
        Assert.Equal("Updated.", probe.Session.Options?.Instructions);
        Assert.Equal("Updated.\n", _engine.Answers[0].Request.Preamble);
    }

    [Fact]
    public async Task ATranscriptionSessionTranscribesAndNeverAnswers()
    {
        var probe = await Open(Manual(kind: RealtimeSessionKind.Transcription));

        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        var transcription = await probe.WaitFor<InputAudioTranscriptionRealtimeServerMessage>(RealtimeServerMessageType.InputAudioTranscriptionCompleted);
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);

        Assert.Equal("what time is it", transcription.Transcription);
        Assert.Empty(_engine.Answers);
        Assert.Contains("transcription session", error.Error?.Message);
    }

    [Fact]
    public async Task TheClientAndSessionAnswerForTheirServices()
    {
        using var client = new MiniOmniRealtimeClient(_engine.Object);
        await using var session = await client.CreateSessionAsync();

        Assert.Equal("scripted", ((ChatClientMetadata?)client.GetService(typeof(ChatClientMetadata)))?.DefaultModelId);
        Assert.Same(_engine.Object, session.GetService(typeof(IMiniOmniEngine)));
        Assert.Same(session, session.GetService(typeof(IRealtimeClientSession)));
        Assert.Null(session.GetService(typeof(IMiniOmniEngine), "key"));
        Assert.IsType<MiniOmniRealtimeClient>(_engine.Object.AsIRealtimeClient());
    }

    [Fact]
    public async Task ClearingTheBufferDropsTheAudioNotYetCommitted()
    {
        var probe = await Open(ManualTurns);

        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new InputAudioBufferClearRealtimeClientMessage());
        await probe.WaitFor(MiniOmniRealtimeServerMessageTypes.InputAudioCleared);
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);

        Assert.Equal("input_audio_buffer_commit_empty", error.Error?.ErrorCode);
        Assert.Empty(_engine.Answers);
    }

    [Fact]
    public async Task CancellingAResponseStopsItsAnswerAndEndsItCancelled()
    {
        var probe = await Open(ManualTurns);
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("Never")], hold: new TaskCompletionSource().Task));

        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitFor(RealtimeServerMessageType.OutputAudioTranscriptionDelta);
        await probe.Send(new CancelResponseRealtimeClientMessage());
        var done = await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Cancelled, done.Status);
        Assert.True(_engine.Answers[0].Token.IsCancellationRequested);

        // Nothing left to cancel is not an error, and the session goes on.
        await probe.Send(new CancelResponseRealtimeClientMessage());
        await AskManually(probe, Tone(8000, 0.3f));
        Assert.DoesNotContain("Error", probe.Types);
    }

    [Fact]
    public async Task AClientThatStopsReadingEndsItsSessionWithAnErrorAndStopsItsAnswer()
    {
        // An answer far longer than the queue: 400 speech chunks against room for 16 messages.
        var answerStarted = new TaskCompletionSource();
        _engine.ThenAnswer((_, token) => Endless(token, answerStarted));
        var client = new MiniOmniRealtimeClient(_engine.Object, new MiniOmniRealtimeClientOptions { OutboundCapacity = 16, OutboundStallTimeout = TimeSpan.FromMilliseconds(300) });
        await using var session = await client.CreateSessionAsync(ManualTurns);

        // Nobody reads: the answer fills the queue, waits for the reader, and the session gives up on it.
        await session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(Tone(8000, 0.3f)), "audio/pcm;rate=16000")));
        await session.SendAsync(new InputAudioBufferCommitRealtimeClientMessage());
        await session.SendAsync(new CreateResponseRealtimeClientMessage());
        await answerStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var token = _engine.Answers[0].Token;
        await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }).WaitAsync(TimeSpan.FromSeconds(30));

        // The reader then gets what was queued (no more than the queue holds), then the error.
        var read = new List<RealtimeServerMessage>();
        var error = await Assert.ThrowsAsync<TimeoutException>(async () =>
        {
            await foreach (var message in session.GetStreamingResponseAsync())
            {
                read.Add(message);
            }
        });
        Assert.InRange(read.Count, 1, 16);
        Assert.Contains("read none of the session's messages", error.Message);
        Assert.True(token.IsCancellationRequested);
    }

    [Fact]
    public async Task ASlowReaderHoldsTheAnswerBackAndGetsAllOfIt()
    {
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [.. Enumerable.Range(0, 100).Select(i => ScriptedEngine.Speech(240, 0.1f)), ScriptedEngine.Completed(10, 100)]));
        var client = new MiniOmniRealtimeClient(_engine.Object, new MiniOmniRealtimeClientOptions { OutboundCapacity = 16 });
        await using var session = await client.CreateSessionAsync(ManualTurns);

        await session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(Tone(8000, 0.3f)), "audio/pcm;rate=16000")));
        await session.SendAsync(new CreateResponseRealtimeClientMessage());
        int deltas = 0;
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var message in session.GetStreamingResponseAsync(guard.Token))
        {
            await Task.Delay(2, guard.Token);
            deltas += message.Type == RealtimeServerMessageType.OutputAudioDelta ? 1 : 0;
            if (message.Type == RealtimeServerMessageType.ResponseDone)
            {
                Assert.Equal(RealtimeResponseStatus.Completed, ((ResponseCreatedRealtimeServerMessage)message).Status);
                break;
            }
        }

        Assert.Equal(100, deltas);
    }

    private static async IAsyncEnumerable<MiniOmniEvent> Endless([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken token, TaskCompletionSource started)
    {
        started.TrySetResult();
        for (int i = 0; i < 400; i++)
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return ScriptedEngine.Speech(240, 0.1f);
        }
    }

    private static RealtimeSessionOptions Manual(
        string? instructions = null, RealtimeAudioFormat? input = null, IReadOnlyList<string>? modalities = null, int? maxOutputTokens = null, RealtimeSessionKind? kind = null) => new()
    {
        InputAudioFormat = input ?? Pcm16k,
        VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
        Instructions = instructions,
        OutputModalities = modalities,
        MaxOutputTokens = maxOutputTokens,
        SessionKind = kind ?? RealtimeSessionKind.Conversation,
    };

    private static RealtimeSessionOptions Detected(MiniOmniVoiceActivityDetectionOptions? detection = null) => new()
    {
        InputAudioFormat = Pcm16k,
        VoiceActivityDetection = detection ?? new MiniOmniVoiceActivityDetectionOptions(),
    };

    private async Task<SessionProbe> Open(RealtimeSessionOptions options)
    {
        var client = new MiniOmniRealtimeClient(_engine.Object, new MiniOmniRealtimeClientOptions { TimeProvider = _clock });
        return new SessionProbe(await client.CreateSessionAsync(options));
    }

    private static async Task AskManually(SessionProbe probe, float[] question, CreateResponseRealtimeClientMessage? request = null)
    {
        await probe.AppendPcm(question);
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(request ?? new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();
    }

    private sealed class PingMessage : RealtimeClientMessage;
}
