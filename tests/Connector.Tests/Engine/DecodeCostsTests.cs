using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// How a step's rows are split into decodes, from cost tables shaped like those measured on x86 (Q8_0: two rows cost
/// about twice one; repacked Q4_0: four rows at a time), and on the fixture's backbone: however a step is split or
/// padded, every row gets the logits it gets in one decode.
/// </summary>
public sealed class DecodeCostsTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>
{
    // Milliseconds for 1..8 rows, as measured on the project's 2-core x86 machine.
    private static readonly double[] Q8Costs = [13.5, 36.5, 38, 40, 46, 48, 50, 51];
    private static readonly double[] Q4Costs = [9.4, 14.2, 19.9, 13.6, 20.1, 26.1, 27, 24.3];

    [Fact]
    public void WhereTwoRowsCostMoreThanTwoDecodesTheyGoApartAndMoreRowsGoTogether()
    {
        var costs = new DecodeCosts(Q8Costs, 4.5);

        Assert.Equal([new StepDecode(1, 0), new StepDecode(1, 0)], costs.Plan(2));
        Assert.Equal([new StepDecode(4, 0)], costs.Plan(4));
        Assert.Equal([new StepDecode(8, 0)], costs.Plan(8));
    }

    [Fact]
    public void WhereFourRowsCostLessThanThreeAStepOfThreeIsPaddedToFour()
    {
        var costs = new DecodeCosts(Q4Costs, 2.3);

        Assert.Equal([new StepDecode(1, 0)], costs.Plan(1));
        Assert.Equal([new StepDecode(3, 1)], costs.Plan(3));
        Assert.Equal([new StepDecode(7, 1)], costs.Plan(7));
        Assert.Equal(costs.StepMilliseconds(4), costs.CostOf(costs.Plan(3)));
    }

    [Fact]
    public void EveryPlanHoldsEachRowOnceAndIsNoDearerThanOneDecodeOrAllApart()
    {
        foreach (var table in new[] { Q8Costs, Q4Costs })
        {
            var costs = new DecodeCosts(table, 1);
            for (int rows = 0; rows <= 20; rows++)
            {
                var plan = costs.Plan(rows);
                Assert.Equal(rows, plan.Sum(d => d.Rows));
                Assert.All(plan, d => Assert.InRange(d.Rows + d.Padding, 1, costs.MaxRows));
                if (rows is > 0 and <= 8)
                {
                    Assert.True(costs.CostOf(plan) <= Math.Min(costs.StepMilliseconds(rows), rows * costs.StepMilliseconds(1)) + 1e-9);
                }
            }
        }
    }

    [Fact]
    public void FixedPoliciesIgnoreTheCosts()
    {
        Assert.Equal([new StepDecode(3, 0)], new DecodeCosts(Q8Costs, 1, StepDecodePolicy.Together).Plan(3));
        Assert.Equal(Enumerable.Repeat(new StepDecode(1, 0), 3), new DecodeCosts(Q4Costs, 1, StepDecodePolicy.Apart).Plan(3));
        Assert.Throws<ArgumentException>(() => new DecodeCosts([1, double.NaN], 1));
    }

    [Fact]
    public void TheBackboneMeasuresItsCostsOneSizeAtATimeAndLeavesNothingInTheCache()
    {
        using var vocabularyFile = GgufFile.Open(converted.Model.VocabularyPath);
        using var backbone = GoldenTasks.LoadBackbone(converted.Model, vocabularyFile, maxSequences: 3);
        Assert.Equal(StepDecodePolicy.Together, backbone.Costs.Policy); // nominal until measured

        int measurements = 1;
        while (backbone.MeasureNextCost())
        {
            measurements++;
        }

        // One measurement per step size (1 to 3 rows), then the prompt, then each head's products of 1 to 3 positions.
        Assert.Equal(4 + 2 * 3, measurements);
        Assert.Equal(StepDecodePolicy.Measured, backbone.Costs.Policy);
        Assert.Equal(StepDecodePolicy.Measured, backbone.Heads.TextCosts.Policy);
        Assert.Equal(3, backbone.Heads.AudioCosts.MaxRows);
        Assert.Equal(3, backbone.Costs.MaxRows);
        Assert.False(backbone.MeasureNextCost());
        // Every sequence, the scratch one included, starts again at position 0: nothing was left behind.
        var batch = backbone.CreateBatch();
        for (int sequence = 0; sequence <= 3; sequence++)
        {
            batch.Add(new float[backbone.EmbeddingLength], (LLamaPos)0, (LLamaSeqId)sequence, OutputHeadSet.Text);
        }

        backbone.DecodeHiddenStates(batch);
    }

    [Theory]
    [InlineData(StepDecodePolicy.Apart, 0)]
    [InlineData(StepDecodePolicy.Measured, 5)]
    public void StepsSplitOrPaddedGetTheLogitsOfOneDecode(StepDecodePolicy policy, int padding)
    {
        using var vocabularyFile = GgufFile.Open(converted.Model.VocabularyPath);
        var mix = new EmbeddingMix(vocabularyFile);
        using var together = GoldenTasks.LoadBackbone(converted.Model, vocabularyFile, maxSequences: 3);
        using var split = GoldenTasks.LoadBackbone(converted.Model, vocabularyFile, maxSequences: 3);
        together.Costs = DecodeCosts.Nominal(3, StepDecodePolicy.Together);
        // A table on which three rows are cheapest padded to eight (more rows than sequences: the scratch sequence takes them).
        split.Costs = policy == StepDecodePolicy.Apart ? DecodeCosts.Nominal(3, policy) : new DecodeCosts([5, 5, 5, 5, 5, 5, 5, 1], 1);
        Assert.Equal(padding, split.Costs.Plan(3).Sum(d => d.Padding));
        var random = new Random(9);
        int width = mix.Width;
        float[] Embedding() => [.. Enumerable.Range(0, width).Select(_ => (float)(random.NextDouble() - 0.5))];
        float[][] prompt = [.. Enumerable.Range(0, 6).Select(_ => Embedding())];

        var logits = new List<float[]>[2];
        foreach (var (index, backbone) in new[] { (0, together), (1, split) })
        {
            logits[index] = [];
            random = new Random(10);
            var batch = backbone.CreateBatch();
            for (int sequence = 0; sequence < 3; sequence++)
            {
                batch.Clear();
                for (int position = 0; position < prompt.Length; position++)
                {
                    batch.Add(prompt[(position + sequence) % prompt.Length], (LLamaPos)position, (LLamaSeqId)sequence, OutputHeadSet.None);
                }

                backbone.Decode(batch);
            }

            for (int step = 0; step < 4; step++)
            {
                batch.Clear();
                for (int sequence = 0; sequence < 3; sequence++)
                {
                    batch.Add(Embedding(), (LLamaPos)(prompt.Length + step), (LLamaSeqId)sequence, sequence == 1 ? OutputHeadSet.Text : OutputHeadSet.TextAndAudio);
                }

                backbone.Decode(batch);
                for (int row = 0; row < 3; row++)
                {
                    logits[index].Add([.. backbone.Logits(row)[..1000]]);
                }
            }
        }

        for (int i = 0; i < logits[0].Count; i++)
        {
            float worst = logits[0][i].Zip(logits[1][i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-5f, $"row {i}: {worst:E2}");
        }
    }
}
