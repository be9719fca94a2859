using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// What <c>miniomni run --full-precision-cache --dump-tokens</c> computes, through the same code (the engine loaded with
/// an f32 cache, the request, <see cref="AnswerCompleted.Tokens"/>): on every task of the fixture, greedy answers are
/// the reference's tokens up to the first near-tie (the free-running parity tests' comparison).
/// </summary>
public sealed class EnginePathParityTests(EngineFixture fixture, ITestOutputHelper output) : IClassFixture<EngineFixture>
{
    public static TheoryData<string> Tasks => ["A1A2", "A1T2", "ASR", "T1A2_0", "T1T2_0", "T1A2_1", "T1T2_1", "A1A2_BATCH"];

    [Theory]
    [MemberData(nameof(Tasks))]
    public async Task EveryTaskGivesTheReferenceTokensUpToTheFirstNearTie(string name)
    {
        var completed = await Answer(fixture.Engine, name, fixture.Question);

        var reference = GoldenTasks.Task(name);
        var (task, parallel) = TaskOf(name);
        bool speaks = task is MiniOmniTask.A1A2 or MiniOmniTask.T1A2;
        int comparable = GoldenTasks.FirstNearTie(reference.GetProperty("steps"), speaks, parallel);
        var expectedText = speaks ? GoldenTasks.ReadIds(reference.GetProperty("output")[7]) : GoldenTasks.ReadIds(reference.GetProperty("output"));
        output.WriteLine($"{name}: {completed.Steps} steps, first near-tie at step {comparable}");
        Assert.Equal(reference.GetProperty("prompt_len").GetInt32(), completed.PromptTokens);
        Assert.Equal(expectedText[..comparable], completed.Tokens[7].Take(comparable));
        if (speaks)
        {
            var layers = GoldenTasks.AudioLayers(name);
            for (int layer = 0; layer < 7; layer++)
            {
                Assert.Equal(layers[layer].Take(comparable), completed.Tokens[layer].Take(comparable));
            }
        }

        Assert.True(comparable >= 10, $"a near-tie at step {comparable} leaves too little to compare");
    }

    /// <summary>The request <c>miniomni run --task ... --max-tokens ...</c> makes for a task of the manifest, answered to its end.</summary>
    internal static async Task<AnswerCompleted> Answer(MiniOmniEngine engine, string name, float[] question, int? maxTokens = null)
    {
        var reference = GoldenTasks.Task(name);
        var (task, parallel) = TaskOf(name);
        var request = new MiniOmniRequest
        {
            Task = task,
            BatchParallel = parallel,
            Audio = task is MiniOmniTask.A1A2 or MiniOmniTask.A1T2 or MiniOmniTask.Asr ? question : default,
            Text = reference.TryGetProperty("text", out var text) ? text.GetString() : null,
            MaxTokens = maxTokens ?? reference.GetProperty("max_returned_tokens").GetInt32() - reference.GetProperty("prompt_len").GetInt32(),
        };
        AnswerCompleted? completed = null;
        await foreach (var item in engine.GenerateAsync(request))
        {
            completed = item as AnswerCompleted ?? completed;
        }

        return completed!;
    }

    internal static (MiniOmniTask Task, bool Parallel) TaskOf(string name) => name switch
    {
        "A1A2_BATCH" => (MiniOmniTask.A1A2, true),
        "ASR" => (MiniOmniTask.Asr, false),
        _ => (Enum.Parse<MiniOmniTask>(name.Split('_')[0]), false),
    };
}

/// <summary>
/// Issue 15: a tied checkpoint (one storage for head and embeddings) and an untied one whose head is a copy of its
/// embeddings are the same model, and give the same answers on every kind of task.
/// </summary>
public sealed class TiedModelTests : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task ATiedModelAnswersAsTheUntiedModelWithEqualHeadAndEmbeddings()
    {
        var question = MiniOmni.SK.Audio.AudioDecoder.DecodeFile(Fixture.Question);
        var options = new MiniOmniEngineOptions { ContextSize = 512, Threads = 2, FullPrecisionCache = true };
        using var tied = MiniOmniEngine.Load(Convert(HeadForm.SharedStorage).Path, options);
        using var untied = MiniOmniEngine.Load(Convert(HeadForm.EqualCopy).Path, options);

        foreach (string task in new[] { "A1A2_BATCH", "ASR", "T1A2_1" })
        {
            var fromTied = await EnginePathParityTests.Answer(tied, task, question, maxTokens: 24);
            var fromUntied = await EnginePathParityTests.Answer(untied, task, question, maxTokens: 24);
            Assert.Equal(fromUntied.Tokens, fromTied.Tokens);
        }
    }

    private ModelDirectory Convert(HeadForm form)
    {
        string checkpoint = TiedCheckpoints.Write(Path.Combine(_directory.Path, form.ToString()), form);
        return ModelConverter.Convert(ConvertedFixtureModel.Sources with { CheckpointDirectory = checkpoint }, Path.Combine(_directory.Path, form + "-out"), ModelFileType.F32);
    }
}
