using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.Engine;

public sealed class TokenSamplerTests
{
    private static readonly float[] Logits = [0.1f, 2.5f, -1f, 2.5f, 1.9f, 0f];

    [Fact]
    public void GreedyTakesTheMaximumAndTiesGoToTheLowestId()
    {
        Assert.Equal(1, new TokenSampler(new SamplingOptions()).Sample(Logits));
        Assert.Equal(1, new TokenSampler(new SamplingOptions { Temperature = 0.8f, TopK = 1 }).Sample(Logits));
    }

    [Fact]
    public void TheSameSeedDrawsTheSameTokens()
    {
        var options = new SamplingOptions { Temperature = 1.5f, Seed = 42 };
        var first = new TokenSampler(options);
        var second = new TokenSampler(options);

        var a = Enumerable.Range(0, 50).Select(_ => first.Sample(Logits)).ToList();
        var b = Enumerable.Range(0, 50).Select(_ => second.Sample(Logits)).ToList();

        Assert.Equal(a, b);
        Assert.True(a.Distinct().Count() > 2, "a hot temperature should spread the draws");
    }

    [Fact]
    public void TopKAndTopPRestrictTheDraws()
    {
        var topK = new TokenSampler(new SamplingOptions { Temperature = 5f, TopK = 2, Seed = 1 });
        Assert.All(Enumerable.Range(0, 200).Select(_ => topK.Sample(Logits)), id => Assert.Contains(id, new[] { 1, 3 }));

        // Softmax of [5, 0, ...]: the first token alone holds more than 0.9 of the mass.
        float[] peaked = [5f, 0f, 0f, 0f];
        var nucleus = new TokenSampler(new SamplingOptions { Temperature = 1f, TopP = 0.9f, Seed = 2 });
        Assert.All(Enumerable.Range(0, 200).Select(_ => nucleus.Sample(peaked)), id => Assert.Equal(0, id));
    }

    [Fact]
    public void DrawsFollowTheSoftmax()
    {
        float[] twoWay = [MathF.Log(3f), 0f]; // probabilities 0.75 and 0.25 at temperature 1
        var sampler = new TokenSampler(new SamplingOptions { Temperature = 1f, Seed = 7 });

        double share = Enumerable.Range(0, 4000).Count(_ => sampler.Sample(twoWay) == 0) / 4000.0;

        Assert.InRange(share, 0.72, 0.78);
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f, "Temperature")]
    [InlineData(float.NaN, 0, 1f, "Temperature")]
    [InlineData(1f, -1, 1f, "TopK")]
    [InlineData(1f, 0, 0f, "TopP")]
    [InlineData(1f, 0, 1.5f, "TopP")]
    public void OptionsOutOfRangeAreNamed(float temperature, int topK, float topP, string name)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new TokenSampler(new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP }));
        Assert.Equal(name, error.ParamName);
    }
}
