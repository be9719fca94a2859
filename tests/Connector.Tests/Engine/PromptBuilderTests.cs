using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.Connector.Tests.Engine;

public sealed class PromptBuilderTests
{
    private static readonly MiniOmniVocabulary Vocabulary = GoldenTasks.ReleaseVocabulary;
    private readonly PromptBuilder _builder = new(Vocabulary);

    [Theory]
    [InlineData("A1A2", MiniOmniTask.A1A2)]
    [InlineData("A1T2", MiniOmniTask.A1T2)]
    [InlineData("ASR", MiniOmniTask.Asr)]
    public void SpeechPromptsAreTheReferencePrompts(string name, MiniOmniTask task)
    {
        var reference = GoldenTasks.Task(name);
        int frames = Fixture.Leng;

        var prompt = _builder.ForAudio(task, frames);

        Assert.Equal(reference.GetProperty("prompt_len").GetInt32(), prompt.Length);
        Assert.Equal(reference.GetProperty("input_ids").EnumerateArray().Select(GoldenTasks.ReadIds), prompt.Streams);
        Assert.Equal((1, frames), (prompt.AudioFeatureStart, prompt.AudioFeatureCount));
    }

    [Theory]
    [InlineData("T1A2_0", MiniOmniTask.T1A2)]
    [InlineData("T1A2_1", MiniOmniTask.T1A2)]
    [InlineData("T1T2_0", MiniOmniTask.T1T2)]
    [InlineData("T1T2_1", MiniOmniTask.T1T2)]
    public void TextPromptsAreTheReferencePrompts(string name, MiniOmniTask task)
    {
        var reference = GoldenTasks.Task(name);
        int[] textStream = GoldenTasks.ReadIds(reference.GetProperty("input_ids")[7]);

        var prompt = _builder.ForText(task, textStream[1..^2]); // the question's ids sit between INPUT_T and EOT, ANSWER_T

        Assert.Equal(reference.GetProperty("prompt_len").GetInt32(), prompt.Length);
        Assert.Equal(reference.GetProperty("input_ids").EnumerateArray().Select(GoldenTasks.ReadIds), prompt.Streams);
        Assert.Equal(0, prompt.AudioFeatureCount);
    }

    [Fact]
    public void BatchParallelRowsAreTheReferenceRowsAndDifferOnlyAtTheEnd()
    {
        var reference = GoldenTasks.Task("A1A2_BATCH").GetProperty("input_ids"); // [stream][row][position]

        var (speaking, thinking) = _builder.ForBatchParallel(Fixture.Leng);

        for (int stream = 0; stream < 8; stream++)
        {
            Assert.Equal(GoldenTasks.ReadIds(reference[stream][0]), speaking.Streams[stream]);
            Assert.Equal(GoldenTasks.ReadIds(reference[stream][1]), thinking.Streams[stream]);
            Assert.Equal(speaking.Streams[stream][..^1], thinking.Streams[stream][..^1]);
        }
    }

    [Fact]
    public void APrefixGoesBeforeThePromptOnTheTextStreamAndShiftsTheAudio()
    {
        int[] prefix = [100, 200, 300];
        var plain = _builder.ForAudio(MiniOmniTask.A1A2, 5);

        var prefixed = _builder.ForAudio(MiniOmniTask.A1A2, 5, prefix);

        Assert.Equal(plain.Length + 3, prefixed.Length);
        Assert.Equal(4, prefixed.AudioFeatureStart);
        Assert.Equal([.. prefix, .. plain.Streams[7]], prefixed.Streams[7]);
        Assert.Equal([.. Enumerable.Repeat(Vocabulary.AudioRow(2, Vocabulary.Tokens.PadAudio), 3), .. plain.Streams[2]], prefixed.Streams[2]);
    }

    [Fact]
    public void TasksAndInputsThatDoNotFitAreRefused()
    {
        Assert.Throws<ArgumentException>(() => _builder.ForAudio(MiniOmniTask.T1A2, 5));
        Assert.Throws<ArgumentException>(() => _builder.ForText(MiniOmniTask.A1A2, [1]));
        Assert.Throws<ArgumentException>(() => _builder.ForText(MiniOmniTask.T1T2, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => _builder.ForAudio(MiniOmniTask.Asr, 0));
    }
}
