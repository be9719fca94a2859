using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>The output heads as a ggml graph: each set of rows is exactly its slice of the whole head, however positions are grouped.</summary>
public sealed class OutputHeadsTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>
{
    [Fact]
    public void EachSetOfHeadsIsItsSliceOfTheWholeHeadComputedOnTheHost()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        var vocabulary = Vocabulary();
        using var heads = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = 2 }, maxPositions: 4);
        float[] weight = file.ReadFloat32("output.weight");
        int width = heads.EmbeddingLength;
        var random = new Random(5);
        float[] hidden = [.. Enumerable.Range(0, 4 * width).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        OutputHeadSet[] sets = [OutputHeadSet.Audio, OutputHeadSet.Text, OutputHeadSet.TextAndAudio, OutputHeadSet.Audio];

        var logits = heads.Compute(hidden, sets);

        Assert.Equal(sets.Length, logits.Length);
        for (int position = 0; position < sets.Length; position++)
        {
            var state = hidden.AsSpan(position * width, width);
            // Each head the position asked for, row by row (sampled), against the product on the host.
            Range[] computed = [.. (sets[position].HasFlag(OutputHeadSet.Text) ? new[] { vocabulary.TextHead } : []),
                .. (sets[position].HasFlag(OutputHeadSet.Audio) ? Enumerable.Range(0, vocabulary.AudioLayerCount).Select(vocabulary.AudioHead) : [])];
            foreach (var head in computed)
            {
                var values = logits[position][head];
                int first = head.Start.Value;
                Assert.Equal(head.End.Value - first, values.Length);
                for (int row = first; row < head.End.Value; row += 997)
                {
                    float expected = System.Numerics.Tensors.TensorPrimitives.Dot(weight.AsSpan(row * width, width), state);
                    Assert.Equal(expected, values[row - first], 1e-4f);
                }
            }
        }

        // A head that was not computed is an error, not stale numbers.
        Assert.Throws<InvalidOperationException>(() => logits[0][vocabulary.TextHead].Length);
        Assert.Equal(vocabulary.AudioVocabularySize, logits[0][vocabulary.AudioHead(6)].Length);
    }

    [Fact]
    public void APositionAloneGetsTheLogitsItGetsInAGroupUpToFloatRounding()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        using var heads = new OutputHeads(file, Vocabulary(), new GgmlComputeOptions { Threads = 2 }, maxPositions: 4);
        var random = new Random(6);
        float[] hidden = [.. Enumerable.Range(0, 3 * heads.EmbeddingLength).Select(_ => (float)(random.NextDouble() * 2 - 1))];

        var vocabulary = Vocabulary();
        float[] Whole(RowLogits logits) => [.. logits[vocabulary.TextHead], .. Enumerable.Range(0, vocabulary.AudioLayerCount).SelectMany(layer => logits[vocabulary.AudioHead(layer)].ToArray())];
        float[][] grouped = [.. heads.Compute(hidden, [OutputHeadSet.TextAndAudio, OutputHeadSet.TextAndAudio, OutputHeadSet.TextAndAudio]).Select(Whole)];
        for (int position = 0; position < 3; position++)
        {
            var alone = Whole(heads.Compute(hidden.AsSpan(position * heads.EmbeddingLength, heads.EmbeddingLength), [OutputHeadSet.TextAndAudio])[0]);
            // A product of several columns may sum in another order (ggml picks its kernel by shape).
            float worst = grouped[position].Zip(alone, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-5f, $"position {position}: {worst:E2}");
        }
    }

    [Fact]
    public void ATextHeadRequantizedToQ4KeepsTheAudioHeadsExactAndTheTextHeadCloseToItsWeights()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        var vocabulary = Vocabulary();
        using var exact = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = 2 }, maxPositions: 2);
        using var q4 = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = 2 }, maxPositions: 2, textHeadType: GgmlType.Q4_0);
        var random = new Random(8);
        float[] hidden = [.. Enumerable.Range(0, 2 * exact.EmbeddingLength).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        OutputHeadSet[] sets = [OutputHeadSet.TextAndAudio, OutputHeadSet.Text];

        var expected = exact.Compute(hidden, sets).Select(l => (Text: l[vocabulary.TextHead].ToArray(), Audio: sets[0] == OutputHeadSet.TextAndAudio ? l : default)).ToArray();
        float[] expectedAudio = [.. exact.Compute(hidden.AsSpan(0, exact.EmbeddingLength), [OutputHeadSet.Audio])[0][vocabulary.AudioHead(0)]];
        var logits = q4.Compute(hidden, sets);

        Assert.Equal(GgmlType.Q4_0, q4.TextHeadType);
        Assert.Equal(expectedAudio, logits[0][vocabulary.AudioHead(0)].ToArray());
        for (int position = 0; position < sets.Length; position++)
        {
            var text = logits[position][vocabulary.TextHead];
            double error = 0, spread = 0;
            float mean = expected[position].Text.Average();
            for (int i = 0; i < text.Length; i++)
            {
                error += Math.Pow(text[i] - expected[position].Text[i], 2);
                spread += Math.Pow(expected[position].Text[i] - mean, 2);
            }

            // 4-bit blocks of 32 weights (and the hidden state in 8 bits, as ggml multiplies Q4_0): 8.6% of the logits' spread on the fixture.
            double relative = Math.Sqrt(error / spread);
            Assert.InRange(relative, 0.02, 0.11);
        }
    }

    [Fact]
    public void PositionsSplitIntoSeveralProductsGetTheLogitsOfOne()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        var vocabulary = Vocabulary();
        using var heads = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = 2 }, maxPositions: 4);
        var random = new Random(11);
        float[] hidden = [.. Enumerable.Range(0, 4 * heads.EmbeddingLength).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        OutputHeadSet[] sets = [OutputHeadSet.TextAndAudio, OutputHeadSet.Text, OutputHeadSet.Audio, OutputHeadSet.TextAndAudio];
        float[][] Logits() => [.. heads.Compute(hidden, sets).Select((l, p) => (float[])[
            .. sets[p].HasFlag(OutputHeadSet.Text) ? l[vocabulary.TextHead].ToArray() : [],
            .. sets[p].HasFlag(OutputHeadSet.Audio) ? l[vocabulary.AudioHead(0).Start..vocabulary.AudioHead(vocabulary.AudioLayerCount - 1).End].ToArray() : []])];

        var together = Logits();
        heads.TextCosts = DecodeCosts.Nominal(4, StepDecodePolicy.Apart);
        // Audio: costs on which two products of 2 and 1 positions beat one of 3.
        heads.AudioCosts = new DecodeCosts([1, 1.5, 3, 4], 1, padding: false);
        Assert.Equal([2, 1], heads.AudioCosts.Plan(3).Select(d => d.Rows));
        var apart = Logits();

        for (int position = 0; position < sets.Length; position++)
        {
            Assert.Equal(together[position].Length, apart[position].Length);
            float worst = together[position].Zip(apart[position], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-5f, $"position {position}: {worst:E2}");
        }
    }

    [Fact]
    public void GraphsOfAnotherLayoutWithAsManyNodesAndLeavesAreEachComputedRight()
    {
        // Four answers at once once crashed the process: text [1, 1] with audio [1], then text [1] with audio [1, 1], are
        // graphs of three products and five leaves each, and ggml's allocator placed the second by the first's plan.
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        var vocabulary = Vocabulary();
        using var heads = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = 2 }, maxPositions: 4);
        heads.TextCosts = DecodeCosts.Nominal(4, StepDecodePolicy.Apart);
        heads.AudioCosts = DecodeCosts.Nominal(4, StepDecodePolicy.Apart);
        float[] weight = file.ReadFloat32("output.weight");
        int width = heads.EmbeddingLength;
        var random = new Random(12);
        float[] hidden = [.. Enumerable.Range(0, 3 * width).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        OutputHeadSet[][] layouts =
        [
            [OutputHeadSet.Text, OutputHeadSet.Text, OutputHeadSet.Audio],
            [OutputHeadSet.Text, OutputHeadSet.Audio, OutputHeadSet.Audio],
            [OutputHeadSet.Audio, OutputHeadSet.Text, OutputHeadSet.Audio],
            [OutputHeadSet.Text, OutputHeadSet.Text, OutputHeadSet.Audio],
        ];

        foreach (var sets in layouts)
        {
            var logits = heads.Compute(hidden, sets);
            for (int position = 0; position < sets.Length; position++)
            {
                var head = sets[position] == OutputHeadSet.Text ? vocabulary.TextHead : vocabulary.AudioHead(vocabulary.AudioLayerCount - 1);
                var values = logits[position][head];
                for (int row = head.Start.Value; row < head.End.Value; row += 211)
                {
                    float expected = System.Numerics.Tensors.TensorPrimitives.Dot(weight.AsSpan(row * width, width), hidden.AsSpan(position * width, width));
                    Assert.Equal(expected, values[row - head.Start.Value], 1e-4f);
                }
            }
        }
    }

    [Fact]
    public void AHeadOfTheWrongSizeIsRefusedWithTheFileNamed()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        var vocabulary = Vocabulary() with { RowCount = 1000 };

        var error = Assert.Throws<ModelFileException>(() => new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = 2 }, maxPositions: 1));

        Assert.Contains("vocabulary.gguf", error.Message);
        Assert.Contains("output.weight", error.Message);
    }

    [Fact]
    public void ABackboneWithItsHeadInsideFromAnEarlierVersionAsksToBeConvertedAgain()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "backbone.gguf");
        new GgufWriter().Add("general.architecture", "qwen2").Add("qwen2.embedding_length", 32u)
            .AddTensor("output.weight", [32, 8], GgmlType.F32, () => new float[32 * 8])
            .WriteTo(path);
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        using var heads = new OutputHeads(file, Vocabulary(), new GgmlComputeOptions { Threads = 2 }, maxPositions: 1);

        var error = Assert.Throws<ModelFileException>(() => Backbone.Load(path, heads, new BackboneOptions { GpuLayerCount = 0, CacheType = GGMLType.GGML_TYPE_F32 }));

        Assert.Contains("convert the model again", error.Message);
    }

    private MiniOmniVocabulary Vocabulary() => GoldenTasks.Vocabulary(converted.Model);
}
