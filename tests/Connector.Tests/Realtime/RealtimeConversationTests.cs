using Microsoft.Extensions.AI;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>Earlier turns as the text preamble of the next answer, and what an interrupted answer keeps.</summary>
public sealed class RealtimeConversationTests
{
    [Fact]
    public void TheTurnsBeforeTheQuestionFollowTheInstructions()
    {
        var conversation = new RealtimeConversation();
        conversation.Add(new ConversationEntry("s", ChatRole.System) { Text = "Answer in French." });
        conversation.Add(new ConversationEntry("u1", ChatRole.User) { Text = "Hello" });
        conversation.Add(new ConversationEntry("a1", ChatRole.Assistant) { Text = "Bonjour" });
        conversation.Add(new ConversationEntry("u2", ChatRole.User) { Audio = new float[1600] });
        conversation.Add(new ConversationEntry("a2", ChatRole.Assistant) { Text = "" });
        var question = new ConversationEntry("u3", ChatRole.User) { Text = "And now?" };
        conversation.Add(question);

        string? preamble = conversation.RenderPreamble("Be brief.", question, historyBudget: 1000);

        Assert.Equal("Be brief.\nAnswer in French.\nUser: Hello\nAssistant: Bonjour\nUser: [speech]\n", preamble);
    }

    [Fact]
    public void TheOldestTurnsGoFirstWhenTheBudgetIsSpent()
    {
        var conversation = new RealtimeConversation();
        for (int turn = 0; turn < 10; turn++)
        {
            conversation.Add(new ConversationEntry($"u{turn}", ChatRole.User) { Text = $"question {turn}" });
            conversation.Add(new ConversationEntry($"a{turn}", ChatRole.Assistant) { Text = $"answer {turn}" });
        }

        var question = new ConversationEntry("q", ChatRole.User) { Text = "last" };
        conversation.Add(question);

        string? preamble = conversation.RenderPreamble("Rules.", question, historyBudget: 80);

        // Over budget, the oldest go in one chunk, down to half the budget.
        Assert.Equal("Rules.\nUser: question 9\nAssistant: answer 9\n", preamble);
        Assert.Null(conversation.RenderPreamble(null, question, historyBudget: 0));
    }

    [Fact]
    public void TheHistoryKeepsItsStartUntilItOutgrowsTheBudgetSoEachPreambleExtendsTheLast()
    {
        var conversation = new RealtimeConversation();
        var preambles = new List<string>();
        for (int turn = 0; turn < 12; turn++)
        {
            var question = new ConversationEntry($"u{turn}", ChatRole.User) { Text = $"question {turn}" };
            conversation.Add(question);
            preambles.Add(conversation.RenderPreamble("Rules.", question, historyBudget: 120) ?? "");
            conversation.Add(new ConversationEntry($"a{turn}", ChatRole.Assistant) { Text = $"answer {turn}" });
        }

        // Each turn adds 37 characters: turns 1-3 extend the preamble; turn 4's would pass 120, so lines go until 60 or
        // less are left (57), and turn 5 extends that; turn 6 trims again, and so on: 4 trims in 11 turns, not 8.
        int extended = Enumerable.Range(1, preambles.Count - 1).Count(i => preambles[i].StartsWith(preambles[i - 1], StringComparison.Ordinal));
        Assert.Equal(7, extended);
        Assert.All(preambles, p => Assert.True(p.Length - "Rules.\n".Length <= 120, p));
        Assert.Equal("Rules.\nAssistant: answer 2\nUser: question 3\nAssistant: answer 3\n", preambles[4]);
        Assert.StartsWith(preambles[4], preambles[5], StringComparison.Ordinal);
    }

    [Fact]
    public void OnlyTheLatestUnansweredUserTurnIsAQuestion()
    {
        var conversation = new RealtimeConversation();
        Assert.Null(conversation.TakeQuestion());
        conversation.Add(new ConversationEntry("u1", ChatRole.User) { Text = "one" });
        conversation.Add(new ConversationEntry("u2", ChatRole.User) { Text = "two" });

        Assert.True(conversation.HasQuestion);
        Assert.Equal("u2", conversation.TakeQuestion()?.Id);
        Assert.False(conversation.HasQuestion);
        Assert.Null(conversation.TakeQuestion());
    }

    [Theory]
    [InlineData(0.0, "")]
    [InlineData(0.5, "One two")]
    [InlineData(0.45, "One two")]
    [InlineData(0.9, "One two three")]
    [InlineData(1.5, "One two three four")]
    public void AnInterruptedAnswerKeepsTheWordsMatchingTheAudioHeard(double heardSeconds, string kept)
    {
        var response = new RealtimeResponse(
            "r", new ConversationEntry("q", ChatRole.User), new ConversationEntry("a", ChatRole.Assistant), new RealtimeConversation(),
            new ResponsePlan(Speaks: true, Instructions: null, MaxTokens: 0, OutputSampleRate: 24000), CancellationToken.None);
        var start = DateTimeOffset.UnixEpoch;
        response.AddText("One two three four");
        response.AddAudio(24000, start);

        var at = start + TimeSpan.FromSeconds(heardSeconds);

        var heard = response.Heard(at);

        Assert.Equal(TimeSpan.FromSeconds(Math.Min(heardSeconds, 1)), heard);
        Assert.Equal(kept, response.HeardText(heard));
        Assert.False(response.IsOver(at)); // still generating
        response.Finish();
        Assert.Equal(heardSeconds >= 1, response.IsOver(at)); // generated; over once played
    }
}
