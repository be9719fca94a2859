using LLama.Native;

namespace MiniOmni.SK.Engine;

/// <summary>One answer's request to the generator.</summary>
/// <param name="Task">What to do.</param>
/// <param name="Prompt">The speaking (or only) row's prompt.</param>
/// <param name="ThinkingPrompt">The text-only row of a batch-parallel answer, or null.</param>
/// <param name="AudioFeatures">Adapter output for the prompt's audio positions ([frames x width]), or empty.</param>
/// <param name="Sampling">How heads pick tokens.</param>
/// <param name="MaxSteps">The most steps (the first, from the prompt, included).</param>
internal sealed record GenerationRequest(MiniOmniTask Task, Prompt Prompt, Prompt? ThinkingPrompt, float[] AudioFeatures, SamplingOptions Sampling, int MaxSteps);

/// <summary>
/// Runs one answer on the backbone, step by step: prompt, sample every head, apply the release's rules, feed back.
/// Batch-parallel answers compute the shared prompt prefix once and copy its cache to the thinking row.
/// </summary>
internal sealed class Generator(Backbone backbone, EmbeddingMix mix, MiniOmniVocabulary vocabulary)
{
    /// <summary>Yields every kept step of the answer, in order, until a stop rule or the budget ends it.</summary>
    public IEnumerable<StepTokens> Generate(GenerationRequest request, LLamaSeqId speakingSequence, LLamaSeqId thinkingSequence, CancellationToken cancellationToken = default)
    {
        bool speaks = request.Task is MiniOmniTask.A1A2 or MiniOmniTask.T1A2;
        bool parallel = request.ThinkingPrompt is not null;
        var rules = new DecodingRules(vocabulary, speaks, request.MaxSteps);
        var sampler = new TokenSampler(request.Sampling);
        LLamaSeqId[] sequences = parallel ? [speakingSequence, thinkingSequence] : [speakingSequence];
        int width = mix.Width;

        // The prompt: rows share every position but the last, so the prefix is decoded once and copied.
        var prompts = parallel ? new[] { request.Prompt, request.ThinkingPrompt! } : [request.Prompt];
        var embedded = prompts.Select(p => mix.MixPrompt(p.Streams, request.AudioFeatures, p.AudioFeatureStart)).ToArray();
        int length = request.Prompt.Length;
        int shared = parallel ? length - 1 : length;
        var batch = backbone.CreateBatch();
        for (int start = 0; start < shared; start += (int)backbone.Options.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            batch.Clear();
            int end = Math.Min(shared, start + (int)backbone.Options.BatchSize);
            for (int position = start; position < end; position++)
            {
                batch.Add(embedded[0].AsSpan(position * width, width), (LLamaPos)position, sequences[0], logits: !parallel && position == length - 1);
            }

            backbone.Decode(batch);
        }

        int[] outputIndex = [batch.EmbeddingsCount - 1];
        if (parallel)
        {
            backbone.CopySequence(sequences[0], sequences[1], 0, shared);
            batch.Clear();
            for (int row = 0; row < 2; row++)
            {
                batch.Add(embedded[row].AsSpan((length - 1) * width, width), (LLamaPos)(length - 1), sequences[row], logits: true);
            }

            backbone.Decode(batch);
            outputIndex = [0, 1];
        }

        var audio = new int[vocabulary.AudioLayerCount];
        var embedding = new float[width];
        for (int position = length; ; position++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Audio from the speaking row; text from the thinking row when there is one.
            var speakingLogits = backbone.Logits(outputIndex[0]);
            if (speaks)
            {
                for (int layer = 0; layer < audio.Length; layer++)
                {
                    audio[layer] = sampler.Sample(speakingLogits[vocabulary.AudioHead(layer)]);
                }
            }

            int text = sampler.Sample(backbone.Logits(outputIndex[^1])[vocabulary.TextHead]);
            if (rules.Accept([.. audio], text) is not { } step)
            {
                yield break;
            }

            yield return step;
            if (rules.Steps >= rules.MaxSteps)
            {
                yield break;
            }

            batch.Clear();
            for (int row = 0; row < sequences.Length; row++)
            {
                mix.Mix(rules.NextInput(step, speakingRow: speaks && row == 0), default, embedding);
                batch.Add(embedding, (LLamaPos)position, sequences[row], logits: true);
            }

            backbone.Decode(batch);
            outputIndex = parallel ? [0, 1] : [0];
        }
    }
}
