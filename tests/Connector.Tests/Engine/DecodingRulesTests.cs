using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.Connector.Tests.Engine;

public sealed class DecodingRulesTests
{
    private static readonly MiniOmniVocabulary Vocabulary = GoldenTasks.ReleaseVocabulary;
    private static readonly SpecialTokens Tokens = Vocabulary.Tokens;

    [Fact]
    public void AfterEndOfTextEveryTextTokenIsPad()
    {
        var rules = new DecodingRules(Vocabulary, speaks: true, maxSteps: 10);

        var kept = new[] { 11, Tokens.EndOfText, 12, 13 }.Select(text => rules.Accept(Audio(1), text)!.Value.Text).ToList();

        Assert.Equal([11, Tokens.EndOfText, Tokens.PadText, Tokens.PadText], kept);
        Assert.True(rules.TextEnded);
    }

    [Fact]
    public void SpeechStopsWhenTheLastAudioHeadEndsButNeverOnTheFirstStep()
    {
        var rules = new DecodingRules(Vocabulary, speaks: true, maxSteps: 10);
        var ending = Audio(5);
        ending[6] = Tokens.EndOfAudio;

        Assert.NotNull(rules.Accept(ending, 1)); // the prompt's own step is always kept
        Assert.NotNull(rules.Accept(Audio(2), 1));
        Assert.Null(rules.Accept(ending, 1));
        Assert.Equal(2, rules.Steps);
    }

    [Fact]
    public void TextAnswersStopAtEndOfTextWithoutKeepingIt()
    {
        var rules = new DecodingRules(Vocabulary, speaks: false, maxSteps: 10);

        Assert.Equal(Tokens.PadAudio, rules.Accept(Audio(0), 42)!.Value.Audio[3]);
        Assert.Null(rules.Accept(Audio(0), Tokens.EndOfText));
        Assert.Equal(1, rules.Steps);
    }

    [Fact]
    public void TheBudgetCountsTheFirstStep()
    {
        var rules = new DecodingRules(Vocabulary, speaks: false, maxSteps: 3);

        var kept = Enumerable.Range(0, 5).Select(i => rules.Accept(Audio(0), 100 + i)).TakeWhile(s => s is not null).Count();

        Assert.Equal(3, kept);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DecodingRules(Vocabulary, speaks: true, maxSteps: 0));
    }

    [Fact]
    public void FedBackInputsShiftTheSpeakingRowsAudioAndPadTheThinkingRow()
    {
        var rules = new DecodingRules(Vocabulary, speaks: true, maxSteps: 10);
        var step = rules.Accept([1, 2, 3, 4, 5, 6, 7], 99)!.Value;

        Assert.Equal([152001, 156162, 160323, 164484, 168645, 172806, 176967, 99], rules.NextInput(step, speakingRow: true));
        Assert.Equal([.. Enumerable.Range(0, 7).Select(layer => Vocabulary.AudioRow(layer, Tokens.PadAudio)), 99], rules.NextInput(step, speakingRow: false));
    }

    [Fact]
    public void ReadAloudFeedsTheTextThenEndOfTextThenPadsWithoutSampling()
    {
        var rules = new DecodingRules(Vocabulary, speaks: true, maxSteps: 10, new TextForcing([11, 12], EndsText: true));
        var forced = new List<int?>();
        var kept = new List<int>();

        for (int step = 0; step < 5; step++)
        {
            forced.Add(rules.ForcedText);
            Assert.False(rules.SamplesText);
            kept.Add(rules.Accept(Audio(1), rules.ForcedText!.Value)!.Value.Text);
        }

        Assert.Equal([11, 12, Tokens.EndOfText, Tokens.PadText, Tokens.PadText], forced);
        Assert.Equal([11, 12, Tokens.EndOfText, Tokens.PadText, Tokens.PadText], kept);
        Assert.True(rules.TextEnded);
    }

    [Fact]
    public void EndOfAudioStopsAReadAloudAnswerAsItStopsAnyOther()
    {
        var rules = new DecodingRules(Vocabulary, speaks: true, maxSteps: 50, new TextForcing([11, 12, 13, 14], EndsText: true));
        var ending = Audio(5);
        ending[6] = Tokens.EndOfAudio;

        Assert.NotNull(rules.Accept(Audio(2), rules.ForcedText!.Value));
        Assert.NotNull(rules.Accept(Audio(2), rules.ForcedText!.Value));
        Assert.Null(rules.Accept(ending, rules.ForcedText!.Value)); // mid-text: the voice has the last word

        Assert.Equal(2, rules.Steps);
    }

    [Fact]
    public void AForcedPrefixHandsTheTextBackToTheSamplerOnceFed()
    {
        var rules = new DecodingRules(Vocabulary, speaks: false, maxSteps: 10, new TextForcing([11, 12], EndsText: false));

        Assert.Equal(11, rules.ForcedText);
        rules.Accept(Audio(0), 11);
        Assert.Equal(12, rules.ForcedText);
        rules.Accept(Audio(0), 12);

        Assert.Null(rules.ForcedText);
        Assert.True(rules.SamplesText);
        Assert.Null(rules.Accept(Audio(0), Tokens.EndOfText)); // and the model may end the text itself
    }

    private static int[] Audio(int code) => [.. Enumerable.Repeat(code, 7)];
}
