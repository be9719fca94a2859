using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// Questions at Whisper's 30 s limit (issue 18): exactly 30 s used to ask the encoder for 1501 frames of its 1500; the
/// engine now keeps 1500 (the release itself fails there, see <see cref="WhisperLogMel.FeatureFrameCount"/>), and samples
/// handed over directly are checked as decoded ones are.
/// </summary>
public sealed class QuestionLengthTests(LongQuestionEngineFixture fixture) : IClassFixture<LongQuestionEngineFixture>
{
    [Theory]
    [InlineData(480_000, 1500)] // 30 s exactly
    [InlineData(479_999, 1500)] // one sample under
    [InlineData(479_360, 1499)] // 29.96 s: the release's formula, unclamped
    public async Task AQuestionAtTheWindowsEdgeIsAnsweredWithItsFeatureFrames(int samples, int frames)
    {
        var request = new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = Noise(samples), MaxTokens = 2 };

        AnswerCompleted? completed = null;
        await foreach (var item in fixture.Engine.GenerateAsync(request))
        {
            completed = item as AnswerCompleted ?? completed;
        }

        // The A1T2 prompt is input-audio, the feature rows, end-of-audio and a pad.
        Assert.NotNull(completed);
        Assert.Equal(frames + 3, completed.PromptTokens);
    }

    [Fact]
    public async Task OneSampleOverThirtySecondsIsRefused()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(async () =>
        {
            await foreach (var _ in fixture.Engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = Noise(480_001), MaxTokens = 2 }))
            {
            }
        });

        Assert.Contains("30 s", error.Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public async Task NonFiniteSamplesAreRefusedNamingTheFirstOne(float bad)
    {
        float[] audio = Noise(16_000);
        audio[1234] = bad;
        audio[5000] = bad;

        var error = await Assert.ThrowsAsync<ArgumentException>(async () =>
        {
            await foreach (var _ in fixture.Engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = audio, MaxTokens = 2 }))
            {
            }
        });

        Assert.Contains("sample 1234", error.Message);
        Assert.Contains(bad.ToString(), error.Message);
        Assert.Equal("request", error.ParamName);
    }

    private static float[] Noise(int samples)
    {
        var random = new Random(samples);
        return [.. Enumerable.Range(0, samples).Select(_ => (float)((random.NextDouble() - 0.5) * 0.02))];
    }
}

/// <summary>An engine over the converted fixture whose cache holds a 30 s question's 1503-position prompt.</summary>
public sealed class LongQuestionEngineFixture : IDisposable
{
    private readonly ConvertedFixtureModel _model = new();

    public LongQuestionEngineFixture()
    {
        Engine = MiniOmniEngine.Load(_model.Model.Path, new MiniOmniEngineOptions { ContextSize = 2048, Threads = 2, FullPrecisionCache = true });
    }

    public MiniOmniEngine Engine { get; }

    public void Dispose()
    {
        Engine.Dispose();
        _model.Dispose();
    }
}
