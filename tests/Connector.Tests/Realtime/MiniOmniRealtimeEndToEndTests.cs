// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Engine;
using Xunit.Abstractions;
using static MiniOmni.SK.Connector.Tests.Realtime.Signals;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>Realtime sessions over the engine on the fixture model. Its weights are random, so the answers are checked for shape, not sense.</summary>
public sealed class MiniOmniRealtimeEndToEndTests(EngineFixture fixture, ITestOutputHelper output) : IClassFixture<EngineFixture>
{
    private const int AnswerSteps = 60;
    private const int TranscriptSteps = 40;

    [Fact]
    public async Task ASpokenQuestionIsDetectedAndAnsweredInTextAndSpeech()
    {
        var conversation = await Converse();
        output.WriteLine($"{conversation.Done.Status}: {conversation.Text.Length} characters, {conversation.Speech.Length / 48000.0:F2} s of speech, {conversation.Done.Usage?.OutputTokenCount} steps; heard as \"{conversation.Transcript}\"");

        Assert.Equal(
            ["InputAudioBufferSpeechStarted", "InputAudioBufferSpeechStopped", "InputAudioBufferCommitted", "ConversationItemAdded", "ResponseCreated", "ResponseOutputItemAdded"],
            conversation.Types.Take(6));
        var started = (InputSpeechRealtimeServerMessage)conversation.Messages[0];
        Assert.Equal(TimeSpan.FromSeconds(0.3), started.AudioPosition);
        Assert.NotEmpty(conversation.Text);
        Assert.NotEmpty(conversation.Speech);
        Assert.Equal(0, conversation.Speech.Length % 2);
        Assert.Contains(conversation.Done.Status, new[] { RealtimeResponseStatus.Completed, RealtimeResponseStatus.Incomplete });
        Assert.InRange(conversation.Done.Usage?.OutputTokenCount ?? 0, 1, AnswerSteps);
        Assert.True(conversation.Done.Usage?.InputTokenCount > 0);
        Assert.NotNull(conversation.Transcript);
    }

    [Fact]
    public async Task ConcurrentSessionsEachMatchTheirSoloRun()
    {
        var solo = await Converse();

        var together = await Task.WhenAll(Task.Run(Converse), Task.Run(Converse));

        foreach (var run in together)
        {
            Assert.Equal(solo.Text, run.Text);
            Assert.Equal(solo.Speech, run.Speech);
            Assert.Equal(solo.Transcript, run.Transcript);
            // The question's transcript streams beside the answer, so where its messages fall among the answer's varies.
            Assert.Equal(solo.Types.Where(t => !t.StartsWith("InputAudioTranscription", StringComparison.Ordinal)), run.Types.Where(t => !t.StartsWith("InputAudioTranscription", StringComparison.Ordinal)));
        }
    }

    [Fact]
    public async Task EachTurnDecodesOnlyWhatItAddsNotTheHistoryAgain()
    {
        // The prompt cache alone: the rows each turn decodes are counted, so no preamble is decoded ahead between them.
        var client = new MiniOmniRealtimeClient(fixture.Engine, new MiniOmniRealtimeClientOptions { PrefillHistoryAhead = false });
        await using var session = await client.CreateSessionAsync(new RealtimeSessionOptions
        {
            OutputModalities = ["text"],
            MaxOutputTokens = 6,
            Instructions = "You are a patient weather assistant. Answer in one short sentence, in plain words, and never guess.",
        });
        var probe = new SessionProbe(session);
        var decoded = new List<long>();
        var prompts = new List<long>();
        for (int turn = 0; turn < 4; turn++)
        {
            long rowsBefore = fixture.Engine.DecodeStatistics.Rows;
            await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent($"What will the weather be on day {turn}?")], $"typed{turn}", ChatRole.User)));
            await probe.Send(new CreateResponseRealtimeClientMessage());
            var done = await probe.WaitForResponseDone();
            long rows = fixture.Engine.DecodeStatistics.Rows - rowsBefore;
            // Rows decoded: the prompt positions not shared, then each step fed back (the last one too if the model ended the answer).
            decoded.Add(rows - done.Usage!.OutputTokenCount!.Value);
            prompts.Add(done.Usage.InputTokenCount!.Value);
        }

        output.WriteLine($"prompt positions per turn: {string.Join(", ", prompts)}; decoded: {string.Join(", ", decoded)}");
        // The prompt grows with the history; what each turn decodes does not (the earlier preamble is shared).
        Assert.True(prompts[3] > prompts[1] + 20, string.Join(", ", prompts));
        for (int turn = 2; turn < 4; turn++)
        {
            Assert.InRange(decoded[turn], 1, decoded[1] + 8);
        }

        Assert.True(decoded[3] < prompts[3] - prompts[0] / 2, $"turn 3 decoded {decoded[3]} of {prompts[3]} prompt positions");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WhileTheUserSpeaksTheNextPreambleIsDecodedSoEachAnswerDecodesOnlyItsQuestion(bool ahead)
    {
        var client = new MiniOmniRealtimeClient(fixture.Engine, new MiniOmniRealtimeClientOptions { PrefillHistoryAhead = ahead, TranscribeUserSpeech = false });
        await using var session = await client.CreateSessionAsync(new RealtimeSessionOptions
        {
            MaxOutputTokens = 6,
            Instructions = $"You are a calm tide-table assistant ({ahead}). Say the next high water in a few words, nothing more.",
            VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
        });
        var probe = new SessionProbe(session);
        // The question's own positions: INPUT_A, its adapter frames, EOA and ANSWER_A.
        int question = WhisperLogMel.FeatureFrameCount(fixture.Question.Length) + 3;
        var decoded = new List<int>();
        for (int turn = 0; turn < 4; turn++)
        {
            // What the last answer added to the history is decoded now, while the next question is spoken.
            await ((MiniOmniRealtimeSession)session).PreambleAheadIdle;
            await probe.AppendPcm(fixture.Question);
            await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
            await probe.Send(new CreateResponseRealtimeClientMessage());
            await probe.WaitForResponseDone();
            var timeline = fixture.Engine.LastSpokenTimeline!;
            decoded.Add(timeline.PromptPositionsDecoded);
            output.WriteLine($"turn {turn + 1}: {timeline.PromptPositionsDecoded} prompt positions decoded, {timeline.PromptPositionsReused} shared");
        }

        if (ahead)
        {
            // From turn 2 on, the whole preamble (instructions and every earlier turn) was in the cache before the question came.
            Assert.All(decoded.Skip(1), positions => Assert.Equal(question, positions));
            Assert.True(fixture.Engine.StageCounts.PreamblesPrefilledAhead >= 3);
        }
        else
        {
            // Without it each answer also decodes the turn before it.
            Assert.All(decoded.Skip(1), positions => Assert.True(positions > question + 4, $"{positions} positions decoded for a question of {question}"));
        }
    }

    [Fact]
    public async Task OverTheLazyEngineASessionDecodesItsNextPreambleAheadAndFreesWhatItKeptWhenItEnds()
    {
        // What AddMiniOmni(path) registers: the session reaches the loaded engine's prompt cache through it.
        using var lazy = new LazyMiniOmniEngine(new MiniOmniOptions { ModelPath = fixture.ModelPath, Engine = new MiniOmniEngineOptions { ContextSize = 1024, Threads = 2 } });
        var engine = await lazy.LoadAsync();
        long keptBefore = engine.Scheduler.CachedPrefixCells, aheadBefore = engine.StageCounts.PreamblesPrefilledAhead;
        long keptDuring;
        await using (var session = await lazy.AsIRealtimeClient().CreateSessionAsync(new RealtimeSessionOptions
        {
            OutputModalities = ["text"],
            MaxOutputTokens = 4,
            Instructions = "You call the stations of a branch line, one per answer, and nothing else.",
        }))
        {
            var probe = new SessionProbe(session);
            await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("Next station, please.")], "next", ChatRole.User)));
            await probe.Send(new CreateResponseRealtimeClientMessage());
            await probe.WaitForResponseDone();
            await ((MiniOmniRealtimeSession)session).PreambleAheadIdle;
            keptDuring = engine.Scheduler.CachedPrefixCells;
        }

        // After the answer (and perhaps after the typed item, if it finished before the response stopped it).
        Assert.InRange(engine.StageCounts.PreamblesPrefilledAhead - aheadBefore, 1, 2);
        Assert.True(keptDuring > keptBefore, $"{keptDuring} cells kept during the session, {keptBefore} before");
        Assert.InRange(engine.Scheduler.CachedPrefixCells, 0, keptBefore);
    }

    [Fact]
    public async Task ASessionsKeptPreamblesAreFreedWhenItEnds()
    {
        long before = fixture.Engine.Scheduler.CachedPrefixCells;
        var client = new MiniOmniRealtimeClient(fixture.Engine);
        long during;
        await using (var session = await client.CreateSessionAsync(new RealtimeSessionOptions
        {
            OutputModalities = ["text"],
            MaxOutputTokens = 4,
            Instructions = "You keep a ship's log. Note the wind, the sea and the sails in a few words, nothing more.",
        }))
        {
            var probe = new SessionProbe(session);
            for (int turn = 0; turn < 2; turn++)
            {
                await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent($"Log entry {turn}, please.")], $"log{turn}", ChatRole.User)));
                await probe.Send(new CreateResponseRealtimeClientMessage());
                await probe.WaitForResponseDone();
            }

            during = fixture.Engine.Scheduler.CachedPrefixCells;
        }

        long after = fixture.Engine.Scheduler.CachedPrefixCells;
        output.WriteLine($"kept preamble cells: {before} before the session, {during} while it lasted, {after} after it ended");
        // Its preambles were kept while it talked (its next turn shared them), and freed when it ended.
        Assert.True(during > before, $"{during} cells kept during the session against {before} before");
        Assert.Equal(before, after);
    }

    /// <summary>Speaks the fixture question (after 0.3 s of silence, then 1 s of it) and lets turn detection commit it.</summary>
    private async Task<Conversation> Converse()
    {
        // Random weights never end a transcript: a short budget keeps the transcripts, now decoded beside the answers, brief.
        var client = new MiniOmniRealtimeClient(fixture.Engine, new MiniOmniRealtimeClientOptions { TranscriptionMaxTokens = TranscriptSteps });
        await using var session = await client.CreateSessionAsync(new RealtimeSessionOptions
        {
            InputAudioFormat = new RealtimeAudioFormat("audio/pcm", 16000),
            MaxOutputTokens = AnswerSteps,
        });
        var probe = new SessionProbe(session);

        await probe.AppendPcm(Concat(Silence(0.3), fixture.Question, Silence(1)), chunkMs: 40);
        var done = await probe.WaitForResponseDone();
        // The transcript is decoded beside the answer: it may be complete before the answer is.
        var transcription = probe.Seen.OfType<InputAudioTranscriptionRealtimeServerMessage>().FirstOrDefault(m => m.Type == RealtimeServerMessageType.InputAudioTranscriptionCompleted)
            ?? await probe.WaitFor<InputAudioTranscriptionRealtimeServerMessage>(RealtimeServerMessageType.InputAudioTranscriptionCompleted);

        var outputs = probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().ToList();
        string text = string.Concat(outputs.Where(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDelta).Select(m => m.Text));
        byte[] speech = [.. outputs.Where(m => m.Type == RealtimeServerMessageType.OutputAudioDelta).SelectMany(m => Decode(m.Audio))];
        Assert.Equal(text, outputs.Single(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDone).Text);
        return new Conversation(probe.Seen, probe.Types, text, speech, done, transcription.Transcription);
    }

    private sealed record Conversation(
        List<RealtimeServerMessage> Messages, List<string> Types, string Text, byte[] Speech, ResponseCreatedRealtimeServerMessage Done, string? Transcript);
}
