using System.Text.Json;
using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// Text-forced decoding on the fixture model: the text stream is given, the audio heads are sampled. Their logits are held
/// to a teacher-forced computation of the same streams, and, with the reference's own answer text forced, to the reference.
/// </summary>
public sealed class TextForcingTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    // As TeacherForcedParityTests: f32 weights and an f32 cache agree with the reference to ~1e-5.
    private const float Tolerance = 1e-4f;
    private static readonly MiniOmniVocabulary Vocabulary = GoldenTasks.ReleaseVocabulary;
    private static readonly SpecialTokens Tokens = Vocabulary.Tokens;

    [Fact]
    public void ReadAloudAudioLogitsEqualATeacherForcedComputationAtEveryStep()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        using var tokenizer = TextTokenizer.Load(converted.Model.VocabularyPath);
        int[] text = tokenizer.Tokenize("What is your name?");
        var prompt = new PromptBuilder(Vocabulary).ForReadAloud(text);
        int budget = MiniOmniEngine.ReadAloudSteps(text.Length);
        var request = new GenerationRequest(MiniOmniTask.ReadAloud, prompt, null, [], new SamplingOptions(), budget) { ForcedText = new TextForcing(text, EndsText: true) };

        var (steps, recorded) = Run(file, request);

        // The text stream is the forced text, then EOT, then pads; the text head was never asked for.
        Assert.Equal([.. text, Tokens.EndOfText, .. Enumerable.Repeat(Tokens.PadText, steps.Count - text.Length - 1)], steps.Select(s => s.Text));
        Assert.All(recorded, r => Assert.Equal(OutputHeadSet.Audio, r.Heads));
        Assert.Equal(steps.Count, recorded.Count);

        // The same streams fed to the backbone directly, every head computed: the audio heads agree at every step.
        using var backbone = GoldenTasks.LoadBackbone(converted.Model, file);
        var mix = new EmbeddingMix(file);
        var rules = new DecodingRules(Vocabulary, speaks: true, budget);
        var batch = backbone.CreateBatch();
        var embeddings = mix.MixPrompt(prompt.Streams, [], 0);
        for (int position = 0; position < prompt.Length; position++)
        {
            batch.Add(embeddings.AsSpan(position * mix.Width, mix.Width), (LLamaPos)position, (LLamaSeqId)0, position == prompt.Length - 1 ? OutputHeadSet.TextAndAudio : OutputHeadSet.None);
        }

        double worst = 0;
        var embedding = new float[mix.Width];
        for (int step = 0; step < steps.Count; step++)
        {
            if (step > 0)
            {
                batch.Clear();
                mix.Mix(rules.NextInput(steps[step - 1], speakingRow: true), default, embedding);
                batch.Add(embedding, (LLamaPos)(prompt.Length + step - 1), (LLamaSeqId)0, OutputHeadSet.TextAndAudio);
            }

            backbone.Decode(batch);
            var logits = backbone.Logits(batch.EmbeddingsCount - 1);
            for (int layer = 0; layer < 7; layer++)
            {
                var expected = logits[Vocabulary.AudioHead(layer)];
                var actual = recorded[step].Audio[layer];
                float error = System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(Difference(expected, actual));
                worst = Math.Max(worst, error);
                Assert.True(error <= Tolerance, $"step {step} head {layer}: {error:E2}");
                Assert.Equal(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(actual), steps[step].Audio[layer]);
            }
        }

        output.WriteLine($"{steps.Count} steps of a {budget}-step budget, worst |logit - teacher-forced| {worst:E2}");
    }

    [Fact]
    public void ForcingTheReferencesOwnAnswerTextReproducesItsSpeechUpToTheFirstNearTie()
    {
        var reference = GoldenTasks.Task("T1A2_0");
        var prompt = new PromptBuilder(Vocabulary).ForText(MiniOmniTask.T1A2, GoldenTasks.ReadIds(reference.GetProperty("input_ids")[7])[1..^2]);
        int[] answerText = GoldenTasks.ReadIds(reference.GetProperty("output")[7]);
        var referenceSteps = reference.GetProperty("steps");
        var request = new GenerationRequest(MiniOmniTask.T1A2, prompt, null, [], new SamplingOptions(), answerText.Length) { ForcedText = new TextForcing(answerText, EndsText: false) };
        using var file = GgufFile.Open(converted.Model.VocabularyPath);

        var (steps, recorded) = Run(file, request);

        Assert.Equal(answerText, steps.Select(s => s.Text));
        int comparable = FirstAudioNearTie(referenceSteps);
        var layers = GoldenTasks.AudioLayers("T1A2_0");
        double worst = 0;
        for (int step = 0; step < comparable; step++)
        {
            for (int layer = 0; layer < 7; layer++)
            {
                Assert.Equal(layers[layer][step], steps[step].Audio[layer]);
                var head = referenceSteps[step][0][layer];
                var ids = GoldenTasks.ReadIds(head[0]);
                var values = head[1].EnumerateArray().Select(v => v.GetSingle()).ToArray();
                for (int k = 0; k < ids.Length; k++)
                {
                    double error = Math.Abs(recorded[step].Audio[layer][ids[k]] - values[k]);
                    worst = Math.Max(worst, error);
                    Assert.True(error <= Tolerance, $"step {step} head {layer} id {ids[k]}: {error:E2}");
                }
            }
        }

        output.WriteLine($"{comparable} of {answerText.Length} steps before the first audio near-tie, worst |logit - reference| {worst:E2}");
        Assert.True(comparable >= 10, $"a near-tie at step {comparable} leaves too little to compare");
    }

    [Fact]
    public void ARequiredPrefixIsFedThenTheTextHeadDecides()
    {
        using var file = GgufFile.Open(converted.Model.VocabularyPath);
        var reference = GoldenTasks.Task("T1T2_0");
        var prompt = new PromptBuilder(Vocabulary).ForText(MiniOmniTask.T1T2, GoldenTasks.ReadIds(reference.GetProperty("input_ids")[7])[1..^2]);
        int[] free = GoldenTasks.ReadIds(reference.GetProperty("output"));
        int[] prefix = [free[3], free[0], free[7]];
        var request = new GenerationRequest(MiniOmniTask.T1T2, prompt, null, [], new SamplingOptions(), 12) { ForcedText = new TextForcing(prefix, EndsText: false) };

        var (steps, recorded) = Run(file, request);

        Assert.Equal(prefix, steps.Take(3).Select(s => s.Text));
        // The forced steps compute no head at all; from the fourth on, the text head is sampled again.
        Assert.Equal(12, steps.Count);
        Assert.Equal(9, recorded.Count);
        Assert.All(recorded, r => Assert.Equal(OutputHeadSet.Text, r.Heads));
        Assert.All(recorded.Zip(steps.Skip(3)), pair => Assert.Equal(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(pair.First.Text!), pair.Second.Text));
    }

    private static float[] Difference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var difference = new float[a.Length];
        System.Numerics.Tensors.TensorPrimitives.Subtract(a, b, difference);
        return difference;
    }

    private static int FirstAudioNearTie(JsonElement steps)
    {
        for (int step = 0; step < steps.GetArrayLength(); step++)
        {
            if (Enumerable.Range(0, 7).Select(h => steps[step][0][h][1]).Any(values => values[0].GetSingle() - values[1].GetSingle() < Tolerance))
            {
                return step;
            }
        }

        return steps.GetArrayLength();
    }

    // One answer through the engine's own scheduler and rules, over the fixture's backbone, recording every row's logits.
    private (List<StepTokens> Steps, List<RecordedLogits> Logits) Run(GgufFile file, GenerationRequest request)
    {
        using var backbone = GoldenTasks.LoadBackbone(converted.Model, file);
        var recording = new RecordingBackbone(backbone, Vocabulary);
        using var scheduler = new DecodeScheduler(recording, new EmbeddingMix(file), Vocabulary, maxActiveAnswers: 1, NullLogger.Instance);
        var steps = scheduler.Submit(request, CancellationToken.None).ReadAllAsync().ToBlockingEnumerable().ToList();
        return (steps, recording.Recorded);
    }

    /// <summary>The logits a step read: each audio head's and the text head's rows that were computed (null where not).</summary>
    internal sealed record RecordedLogits(OutputHeadSet Heads, float[][] Audio, float[]? Text);

    /// <summary>A real backbone whose every logits row the answer reads is copied out, in order.</summary>
    internal sealed class RecordingBackbone(Backbone inner, MiniOmniVocabulary vocabulary) : IBackbone
    {
        private BackboneBatch? _last;

        public List<RecordedLogits> Recorded { get; } = [];

        public BackboneOptions Options => inner.Options;

        public int EmbeddingLength => inner.EmbeddingLength;

        public DecodeCosts Costs => inner.Costs;

        public TimeSpan HeadsTime => inner.HeadsTime;

        // No calibration decodes: the recording holds the answer's own decodes alone.
        public bool MeasureNextCost() => false;

        public void Decode(BackboneBatch batch)
        {
            inner.Decode(batch);
            _last = batch;
        }

        public ReadOnlyMemory<float> HiddenState(int batchIndex) => inner.HiddenState(batchIndex);

        public RowLogits Logits(int batchIndex)
        {
            var logits = inner.Logits(batchIndex);
            var heads = _last!.Rows[batchIndex].Heads;
            float[][] audio = heads.HasFlag(OutputHeadSet.Audio) ? [.. Enumerable.Range(0, 7).Select(layer => logits[vocabulary.AudioHead(layer)].ToArray())] : [];
            Recorded.Add(new RecordedLogits(heads, audio, heads.HasFlag(OutputHeadSet.Text) ? logits[vocabulary.TextHead].ToArray() : null));
            return logits;
        }

        public void CopySequence(LLamaSeqId source, LLamaSeqId destination, int from, int to) => inner.CopySequence(source, destination, from, to);

        public void RemoveSequence(LLamaSeqId sequence) => inner.RemoveSequence(sequence);
    }
}
