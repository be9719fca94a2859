// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using NAudio.Codecs;
using static MiniOmni.SK.Connector.Tests.Realtime.Signals;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>
/// What OpenAI's clients do to a session beyond asking and hearing: truncate, retrieve and delete items, cancel for a
/// reason, read usage details, turn transcription off, talk G.711. Over a scripted engine.
/// </summary>
public sealed class RealtimeItemEditingTests
{
    private static readonly RealtimeAudioFormat Pcm16k = new("audio/pcm", 16000);
    private readonly ScriptedEngine _engine = new();
    private readonly ManualClock _clock = new();

    [Fact]
    public async Task TruncatingAPlayedAnswerKeepsWhatWasHeardAndTheNextAnswerHearsOnlyThat()
    {
        var probe = await Open(Manual());
        // One second of speech, its words written first (as Mini-Omni writes them, ahead of the speech).
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("Alpha beta gamma delta"), ScriptedEngine.Speech(24000, 0.2f), ScriptedEngine.Completed(10, 30)]));
        await Ask(probe);
        var answer = AnswerItemId(probe);

        await probe.Send(new TruncateConversationItemRealtimeClientMessage { ItemId = answer, AudioEnd = TimeSpan.FromMilliseconds(500), MessageId = "evt_truncate" });
        var truncated = await probe.WaitFor<AnswerTruncatedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.AnswerTruncated);
        await probe.Send(new RetrieveConversationItemRealtimeClientMessage { ItemId = answer });
        var retrieved = await probe.WaitFor<ResponseOutputItemRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.ConversationItemRetrieved);
        await Ask(probe);

        Assert.Equal(answer, truncated.ItemId);
        Assert.Equal(TimeSpan.FromMilliseconds(500), truncated.AudioEnd);
        Assert.Equal("Alpha beta", truncated.Text);
        Assert.Equal(answer, retrieved.Item?.Id);
        Assert.Equal(ChatRole.Assistant, retrieved.Item?.Role);
        Assert.Equal("Alpha beta", Assert.IsType<TextContent>(Assert.Single(retrieved.Item!.Contents)).Text);
        var details = Assert.IsType<MiniOmniRealtimeItemDetails>(retrieved.Item.RawRepresentation);
        Assert.Equal("incomplete", details.Status);
        Assert.True(details.Speaks);
        Assert.Contains("Assistant: Alpha beta\n", _engine.Answers[1].Request.Preamble);
        Assert.DoesNotContain("gamma", _engine.Answers[1].Request.Preamble);
        Assert.DoesNotContain("Error", probe.Types);
    }

    [Fact]
    public async Task TextWrittenAfterThePointHeardIsNotKeptEvenWhenItsShareWouldBe()
    {
        var probe = await Open(Manual());
        // Half a second of speech before any word is written: nothing was heard of the words at 0.4 s.
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token,
            [ScriptedEngine.Speech(12000, 0.2f), new TextDelta("One two three four"), ScriptedEngine.Speech(12000, 0.2f), ScriptedEngine.Completed(10, 30)]));
        await Ask(probe);

        await probe.Send(new TruncateConversationItemRealtimeClientMessage { ItemId = AnswerItemId(probe), AudioEnd = TimeSpan.FromMilliseconds(400) });
        var early = await probe.WaitFor<AnswerTruncatedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.AnswerTruncated);
        await probe.Send(new TruncateConversationItemRealtimeClientMessage { ItemId = AnswerItemId(probe), AudioEnd = TimeSpan.FromMilliseconds(750) });
        var later = await probe.WaitFor<AnswerTruncatedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.AnswerTruncated);

        Assert.Equal(string.Empty, early.Text);
        // At 0.75 s the words are written and three quarters of the speech played: the share, cut back to a word.
        Assert.Equal("One two three", later.Text);
    }

    [Fact]
    public async Task TruncatingAnAnswerStillGeneratingStopsItAsCancelledByTheClient()
    {
        var probe = await Open(Manual());
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("One two three four"), ScriptedEngine.Speech(24000, 0.2f)], hold: new TaskCompletionSource().Task));
        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitFor(RealtimeServerMessageType.OutputAudioDelta);

        await probe.Send(new TruncateConversationItemRealtimeClientMessage { ItemId = AnswerItemId(probe), AudioEnd = TimeSpan.FromMilliseconds(250) });
        var truncated = await probe.WaitFor<AnswerTruncatedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.AnswerTruncated);

        var done = probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.ResponseDone);
        Assert.Equal(RealtimeResponseStatus.Cancelled, done.Status);
        Assert.Equal(MiniOmniRealtimeStatusReasons.ClientCancelled, done.AdditionalProperties?[MiniOmniRealtimeStatusReasons.Key]);
        var itemDone = (ResponseOutputItemRealtimeServerMessage)probe.Seen.Single(m => m.Type == RealtimeServerMessageType.ResponseOutputItemDone);
        Assert.Equal("incomplete", Assert.IsType<MiniOmniRealtimeItemDetails>(itemDone.Item!.RawRepresentation).Status);
        Assert.Equal("One", truncated.Text);
    }

    [Fact]
    public async Task ACancelSaysTheClientCancelledAndABargeInSaysATurnWasDetected()
    {
        var manual = await Open(Manual());
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("One"), ScriptedEngine.Speech(2400, 0.2f)], hold: new TaskCompletionSource().Task));
        await manual.AppendPcm(Tone(8000, 0.3f));
        await manual.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await manual.Send(new CreateResponseRealtimeClientMessage());
        await manual.WaitFor(RealtimeServerMessageType.OutputAudioDelta);
        await manual.Send(new CancelResponseRealtimeClientMessage());
        var cancelled = await manual.WaitForResponseDone();

        var detected = await Open(new RealtimeSessionOptions { InputAudioFormat = Pcm16k, VoiceActivityDetection = new MiniOmniVoiceActivityDetectionOptions() });
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("One"), ScriptedEngine.Speech(2400, 0.2f)], hold: new TaskCompletionSource().Task));
        await detected.AppendPcm(Concat(Silence(0.5), Tone(8000, 0.1f), Silence(0.6)));
        await detected.WaitFor(RealtimeServerMessageType.OutputAudioDelta);
        await detected.AppendPcm(Tone(3200, 0.1f));
        var interrupted = await detected.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Cancelled, cancelled.Status);
        Assert.Equal(MiniOmniRealtimeStatusReasons.ClientCancelled, cancelled.AdditionalProperties?[MiniOmniRealtimeStatusReasons.Key]);
        Assert.Equal(RealtimeResponseStatus.Cancelled, interrupted.Status);
        Assert.Equal(MiniOmniRealtimeStatusReasons.TurnDetected, interrupted.AdditionalProperties?[MiniOmniRealtimeStatusReasons.Key]);
    }

    [Fact]
    public async Task ADeletedItemIsNoLongerHeardAndAskingForItIsAnErrorThatNamesTheRequest()
    {
        var probe = await Open(Manual());
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("My name is Ada.")], "item_name", ChatRole.User)));
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("I like tea.")], "item_tea", ChatRole.User)));

        await probe.Send(new DeleteConversationItemRealtimeClientMessage { ItemId = "item_name" });
        var deleted = await probe.WaitFor<ConversationItemDeletedRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.ConversationItemDeleted);
        await probe.Send(new RetrieveConversationItemRealtimeClientMessage { ItemId = "item_name", MessageId = "evt_42" });
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);
        await Ask(probe);

        Assert.Equal("item_name", deleted.ItemId);
        Assert.Equal("evt_42", error.OriginatingMessageId);
        Assert.Equal("item_not_found", error.Error?.ErrorCode);
        Assert.Contains("item_name", error.Error?.Message);
        Assert.DoesNotContain("Ada", _engine.Answers[0].Request.Preamble ?? string.Empty);
    }

    [Fact]
    public async Task CommittedTurnsNameTheItemBeforeThemAndAnswersAreAddedThenDone()
    {
        var probe = await Open(Manual());
        await Ask(probe);
        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        var second = await probe.WaitFor<InputSpeechRealtimeServerMessage>(MiniOmniRealtimeServerMessageTypes.InputAudioCommitted);

        var first = probe.Seen.OfType<InputSpeechRealtimeServerMessage>().First(m => m.Type == MiniOmniRealtimeServerMessageTypes.InputAudioCommitted);
        var answerAdded = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.ConversationItemAdded).ToList();
        var answerDone = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.ConversationItemDone);
        Assert.Null(first.PreviousItemId);
        Assert.Equal(answerDone.Item?.Id, second.PreviousItemId);
        Assert.Equal(2, answerAdded.Count);
        Assert.Equal(ChatRole.Assistant, answerAdded[1].Item?.Role);
        Assert.Equal("in_progress", Assert.IsType<MiniOmniRealtimeItemDetails>(answerAdded[1].Item!.RawRepresentation).Status);
        var doneDetails = Assert.IsType<MiniOmniRealtimeItemDetails>(answerDone.Item!.RawRepresentation);
        Assert.Equal("completed", doneDetails.Status);
        Assert.Equal(first.ItemId, doneDetails.PreviousItemId);
    }

    [Fact]
    public async Task UsageSplitsTextAndAudioTokensInAndOut()
    {
        var probe = await Open(Manual());
        // 40 prompt positions, 25 of them the question's audio; 30 steps, 6 of them words.
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token,
            [new TextDelta("Hi"), ScriptedEngine.Speech(480, 0.2f), ScriptedEngine.Completed(40, 30) with { PromptAudioPositions = 25, TextTokens = 6 }]));

        await Ask(probe);
        var usage = probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.ResponseDone).Usage;
        var transcription = await probe.WaitFor<InputAudioTranscriptionRealtimeServerMessage>(RealtimeServerMessageType.InputAudioTranscriptionCompleted);

        Assert.Equal(40, usage?.InputTokenCount);
        Assert.Equal(30, usage?.OutputTokenCount);
        Assert.Equal(70, usage?.TotalTokenCount);
        Assert.Equal(25, usage?.InputAudioTokenCount);
        Assert.Equal(15, usage?.InputTextTokenCount);
        Assert.Equal(0, usage?.CachedInputTokenCount);
        Assert.Equal(6, usage?.OutputTextTokenCount);
        Assert.Equal(24, usage?.OutputAudioTokenCount);
        // A transcription writes text alone.
        Assert.Equal(20, transcription.Usage?.InputTokenCount);
        Assert.Equal(6, transcription.Usage?.OutputTextTokenCount);
        Assert.Equal(0, transcription.Usage?.OutputAudioTokenCount);
    }

    [Fact]
    public async Task TranscriptionTurnedOffInTheOptionsTranscribesNothing()
    {
        var probe = await Open(new RealtimeSessionOptions
        {
            InputAudioFormat = Pcm16k,
            VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
            TranscriptionOptions = new MiniOmniTranscriptionOptions { Enabled = false },
        });

        await Ask(probe);
        await Ask(probe);

        Assert.Equal(2, _engine.Answers.Count);
        Assert.Empty(_engine.Transcriptions);
        Assert.DoesNotContain(probe.Types, t => t.StartsWith("InputAudioTranscription", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("audio/pcmu")]
    [InlineData("audio/pcma")]
    public async Task G711InIsHeardAt16kHzAndSpeechGoesOutAsG711At8kHz(string mediaType)
    {
        bool muLaw = mediaType == "audio/pcmu";
        var g711 = new RealtimeAudioFormat(mediaType, 8000);
        var probe = await Open(new RealtimeSessionOptions { InputAudioFormat = g711, OutputAudioFormat = g711, VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false } });
        var tone = Tone(4000, 0.3f, rate: 8000);
        byte[] encoded = [.. tone.Select(s => (short)Math.Round(s * 32767)).Select(s => muLaw ? MuLawEncoder.LinearToMuLawSample(s) : ALawEncoder.LinearToALawSample(s))];

        // OpenAI's clients label every append "audio/pcm", whatever the session hears.
        foreach (byte[] chunk in encoded.Chunk(800))
        {
            await probe.Send(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(chunk, "audio/pcm")));
        }

        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var done = await probe.WaitForResponseDone();

        // In: NAudio's G.711 decoder, then 8 to 16 kHz.
        float[] decoded = [.. encoded.Select(b => (muLaw ? MuLawDecoder.MuLawToLinearSample(b) : ALawDecoder.ALawToLinearSample(b)) / 32768f)];
        Assert.Equal(new StreamingResampler(8000, 16000).Resample(decoded), _engine.Answers[0].Request.Audio.ToArray());
        // Out: 24 kHz speech resampled to 8 kHz, one G.711 byte a sample, which decodes to within G.711's step of the speech.
        var created = probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.ResponseCreated);
        Assert.Equal(mediaType, created.OutputAudioOptions?.MediaType);
        Assert.Equal(8000, created.OutputAudioOptions?.SampleRate);
        byte[] sent = [.. probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.OutputAudioDelta).SelectMany(m => Decode(m.Audio))];
        var resampler = new StreamingResampler(24000, 8000);
        float[] expected = [.. ScriptedEngine.DefaultEvents.OfType<SpeechChunk>().SelectMany(c => resampler.Resample(c.Samples))];
        Assert.Equal(expected.Length, sent.Length);
        for (int i = 0; i < sent.Length; i++)
        {
            float heard = (muLaw ? MuLawDecoder.MuLawToLinearSample(sent[i]) : ALawDecoder.ALawToLinearSample(sent[i])) / 32768f;
            // G.711's steps grow with the level: 1/16 of it (and 1/256 of full scale near silence) bounds the error.
            Assert.True(Math.Abs(heard - expected[i]) <= Math.Abs(expected[i]) / 16 + 1 / 256f, $"sample {i}: {heard} for {expected[i]}");
        }

        Assert.Equal(RealtimeResponseStatus.Completed, done.Status);
    }

    private static string AnswerItemId(SessionProbe probe) =>
        probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().First(m => m.Type == RealtimeServerMessageType.ResponseOutputItemAdded).Item!.Id!;

    private static RealtimeSessionOptions Manual() => new()
    {
        InputAudioFormat = Pcm16k,
        VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
    };

    private static async Task Ask(SessionProbe probe)
    {
        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();
    }

    private async Task<SessionProbe> Open(RealtimeSessionOptions options)
    {
        var client = new MiniOmniRealtimeClient(_engine.Object, new MiniOmniRealtimeClientOptions { TimeProvider = _clock });
        return new SessionProbe(await client.CreateSessionAsync(options));
    }
}
