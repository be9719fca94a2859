using System.Text.Json;
using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Gguf;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// Every task of the fixture run through the embedding mix, llama.cpp and the output heads with the reference's own tokens fed back
/// (teacher forcing): at every step, every head's logits at the reference's top-5 ids agree within the tolerance,
/// and the top-1 agrees wherever the reference's margin exceeds it. Audio prompts use the reference adapter output,
/// so this isolates the backbone and the decoding loop from the encoder.
/// </summary>
public sealed class TeacherForcedParityTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    private const float Tolerance = 1e-4f;
    private const int TextVocabulary = 152000, AudioVocabulary = 4160, AudioLayers = 7, PadAudio = 4097;

    public static TheoryData<string> Tasks() => ["A1A2", "A1T2", "ASR", "T1A2_0", "T1T2_0", "T1A2_1", "T1T2_1", "A1A2_BATCH"];

    [Theory]
    [MemberData(nameof(Tasks))]
    public void LogitsFollowTheReferenceAtEveryStep(string taskName)
    {
        var task = GoldenTasks.Task(taskName);
        bool batchParallel = taskName == "A1A2_BATCH";
        bool audioPrompt = taskName.StartsWith('A');
        bool speechOut = taskName.StartsWith("A1A2", StringComparison.Ordinal) || taskName.StartsWith("T1A2", StringComparison.Ordinal);
        // A batch-parallel prompt is stored [stream][row][position].
        var rows = batchParallel
            ? Enumerable.Range(0, 2).Select(row => task.GetProperty("input_ids").EnumerateArray().Select(stream => GoldenTasks.ReadIds(stream[row])).ToArray()).ToList()
            : [ReadStreams(task.GetProperty("input_ids"))];
        var outputStreams = speechOut
            ? ReadStreams(task.GetProperty("output"))
            : [.. Enumerable.Repeat(Array.Empty<int>(), AudioLayers), GoldenTasks.ReadIds(task.GetProperty("output"))];
        var steps = task.GetProperty("steps");

        using var vocabularyFile = GgufFile.Open(converted.Model.VocabularyPath);
        var mix = new EmbeddingMix(vocabularyFile);
        using var backbone = GoldenTasks.LoadBackbone(converted.Model, vocabularyFile);
        float[] features = audioPrompt ? Fixture.ReadFloats("adapter_out.f32") : [];
        int promptLength = rows[0][0].Length;
        var prompts = rows.Select(streams => mix.MixPrompt(streams, features, firstAudioPosition: 1)).ToList();
        int width = mix.Width;

        // Prefill: the rows of a batch-parallel prompt share every position but the last, computed once and copied.
        var batch = backbone.CreateBatch();
        int shared = batchParallel ? promptLength - 1 : promptLength;
        for (int position = 0; position < shared; position++)
        {
            batch.Add(prompts[0].AsSpan(position * width, width), (LLamaPos)position, (LLamaSeqId)0, !batchParallel && position == shared - 1 ? OutputHeadSet.TextAndAudio : OutputHeadSet.None);
        }

        backbone.Decode(batch);
        if (batchParallel)
        {
            backbone.CopySequence((LLamaSeqId)0, (LLamaSeqId)1, 0, shared);
            batch.Clear();
            for (int row = 0; row < rows.Count; row++)
            {
                batch.Add(prompts[row].AsSpan((promptLength - 1) * width, width), (LLamaPos)(promptLength - 1), (LLamaSeqId)row, OutputHeadSet.TextAndAudio);
            }

            backbone.Decode(batch);
        }

        int compared = 0;
        double worst = 0;
        var input = new int[EmbeddingMix.StreamCount];
        var embedding = new float[width];
        for (int step = 0; step < steps.GetArrayLength(); step++)
        {
            if (step > 0)
            {
                batch.Clear();
                for (int row = 0; row < rows.Count; row++)
                {
                    // Feed back what the reference generated: its audio on a speaking row, PAD_A elsewhere, and its text.
                    bool speaking = speechOut && row == 0;
                    for (int layer = 0; layer < AudioLayers; layer++)
                    {
                        int code = speaking ? outputStreams[layer][step - 1] : PadAudio;
                        input[layer] = TextVocabulary + AudioVocabulary * layer + code;
                    }

                    input[AudioLayers] = outputStreams[AudioLayers][step - 1];
                    mix.Mix(input, default, embedding);
                    batch.Add(embedding, (LLamaPos)(promptLength + step - 1), (LLamaSeqId)row, OutputHeadSet.TextAndAudio);
                }

                backbone.Decode(batch);
            }

            for (int row = 0; row < rows.Count; row++)
            {
                var logits = backbone.Logits(rows.Count == 1 && step == 0 ? shared - 1 : row);
                for (int head = 0; head <= AudioLayers; head++)
                {
                    var reference = steps[step][row][head];
                    var slice = head < AudioLayers
                        ? logits[(TextVocabulary + AudioVocabulary * head)..(TextVocabulary + AudioVocabulary * (head + 1))]
                        : logits[..TextVocabulary];
                    var ids = reference[0].EnumerateArray().Select(e => e.GetInt32()).ToArray();
                    var values = reference[1].EnumerateArray().Select(e => e.GetSingle()).ToArray();
                    for (int k = 0; k < ids.Length; k++)
                    {
                        double error = Math.Abs(slice[ids[k]] - values[k]);
                        worst = Math.Max(worst, error);
                        Assert.True(error <= Tolerance, $"{taskName} step {step} row {row} head {head} id {ids[k]}: {slice[ids[k]]} vs {values[k]}");
                    }

                    if (values[0] - values[1] > 2 * Tolerance)
                    {
                        Assert.Equal(ids[0], System.Numerics.Tensors.TensorPrimitives.IndexOfMax(slice));
                    }

                    compared++;
                }
            }
        }

        output.WriteLine($"{taskName}: {steps.GetArrayLength()} steps, {compared} head comparisons, worst |logit - reference| {worst:E2}");
    }

    private static int[][] ReadStreams(JsonElement streams) => [.. streams.EnumerateArray().Select(GoldenTasks.ReadIds)];
}
