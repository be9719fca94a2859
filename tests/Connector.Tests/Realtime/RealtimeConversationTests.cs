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

        string? preamble = conversation.RenderPreamble("Rules.", question, historyBudget: 40);

        Assert.Equal("Rules.\nUser: question 9\nAssistant: answer 9\n", preamble);
        Assert.Null(conversation.RenderPreamble(null, question, historyBudget: 0));
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
