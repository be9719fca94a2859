using System.Text;
using Microsoft.Extensions.AI;
using MiniOmni.SK.AI;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Engine;
using static MiniOmni.SK.Connector.Tests.AI.ScriptedEngine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>Spoken memory on the fixture model: earlier spoken questions reach the model as their transcripts.</summary>
public sealed class SpokenMemoryTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private const int TranscriptTokens = 24;
    private static readonly byte[] QuestionWav = File.ReadAllBytes(Fixture.Question);
    private static readonly ChatOptions TextAnswer = new ChatOptions { MaxOutputTokens = 4 }.WithMiniOmniOutput(MiniOmniOutput.Text);

    [Fact]
    public async Task ATwoTurnSpokenChatRemembersTheFirstQuestionsWordsAndTranscribesThemOnce()
    {
        string transcript = await Transcribe();
        Assert.NotEmpty(transcript);
        var engine = new RecordingEngine(fixture.Engine);
        var client = new MiniOmniChatClient(engine, new MiniOmniChatClientOptions { TranscriptMaxTokens = TranscriptTokens });

        await client.GetResponseAsync(TwoTurns(), TextAnswer);
        await client.GetResponseAsync(TwoTurns(), TextAnswer);

        // The first call transcribes the earlier question, then answers; the second finds the transcript in the cache.
        Assert.Equal([MiniOmniTask.Asr, MiniOmniTask.A1T2, MiniOmniTask.A1T2], engine.Requests.Select(r => r.Task));
        Assert.Equal(TranscriptTokens, engine.Requests[0].MaxTokens);
        Assert.Equal(1, client.SpokenTurnsTranscribed);
        foreach (var answer in engine.Requests.Skip(1))
        {
            string preamble = PreambleOf(answer)!;
            Assert.Contains($"user\n{transcript}", preamble, StringComparison.Ordinal);
            Assert.DoesNotContain(ConversationText.SpokenTurn, preamble, StringComparison.Ordinal);
            Assert.Contains("assistant\nIt is noon.", preamble, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WithSpokenMemoryOffNothingIsTranscribed()
    {
        var engine = new RecordingEngine(fixture.Engine);
        var client = new MiniOmniChatClient(engine, new MiniOmniChatClientOptions { TranscribeSpokenTurns = false });

        await client.GetResponseAsync(TwoTurns(), TextAnswer);

        Assert.Equal(MiniOmniTask.A1T2, Assert.Single(engine.Requests).Task);
        Assert.Contains($"user\n{ConversationText.SpokenTurn}", PreambleOf(engine.Requests[0]), StringComparison.Ordinal);
        Assert.Equal(0, client.SpokenTurnsTranscribed);
    }

    [Fact]
    public void TheTranscriptCacheEvictsTheLeastRecentlyUsedByCountAndBySize()
    {
        var cache = new TranscriptCache(maxEntries: 2, maxBytes: 100);
        cache.Add("a", "one");
        cache.Add("b", "two");
        Assert.True(cache.TryGet("a", out _)); // a is now the most recent
        cache.Add("c", "three");

        Assert.False(cache.TryGet("b", out _));
        Assert.True(cache.TryGet("a", out var a) && a == "one");
        cache.Add("d", new string('x', 46)); // 94 bytes: only it fits
        Assert.Equal(1, cache.Count);
        Assert.True(cache.TryGet("d", out _));
        cache.Add("e", new string('x', 60)); // larger than the whole cache: not kept
        Assert.False(cache.TryGet("e", out _));
        Assert.InRange(cache.Bytes, 1, 100);
    }

    private static ChatMessage[] TwoTurns() =>
    [
        new(ChatRole.User, [new DataContent(QuestionWav, "audio/wav")]),
        new(ChatRole.Assistant, [new TextContent("It is noon."), new DataContent(new byte[] { 1, 2 }, "audio/wav")]),
        new(ChatRole.User, [new DataContent(QuestionWav, "audio/wav")]),
    ];

    private async Task<string> Transcribe()
    {
        var text = new StringBuilder();
        await foreach (var item in fixture.Engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = fixture.Question, MaxTokens = TranscriptTokens }))
        {
            if (item is TextDelta delta)
            {
                text.Append(delta.Text);
            }
        }

        return text.ToString().Trim();
    }
}
