using System.Numerics.Tensors;

namespace MiniOmni.SK.Engine;

/// <summary>How each head picks its token. The defaults are the release's: greedy.</summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature; 0 picks the most likely token (greedy).</summary>
    public float Temperature { get; init; }

    /// <summary>Keep only the K most likely tokens; 0 means no limit (beyond <see cref="TokenSampler.MaxCandidates"/>).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches P (nucleus sampling); 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed of the request's random draws; null draws a fresh seed.</summary>
    public int? Seed { get; init; }

    /// <summary>Whether every head simply takes its most likely token.</summary>
    public bool IsGreedy => Temperature == 0 || TopK == 1;

    /// <summary>Checks the values, naming the one that is out of range.</summary>
    public SamplingOptions Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be a finite number of 0 or more.");
        }

        if (TopK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be 0 (no limit) or more.");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "TopP must be in (0, 1].");
        }

        return this;
    }
}

/// <summary>
/// Picks one token from one head's logits. One sampler per request (it owns the request's random state), so
/// concurrent requests never share draws.
/// </summary>
internal sealed class TokenSampler
{
    /// <summary>Sampling looks at no more than this many of the most likely tokens; the rest carry negligible mass.</summary>
    public const int MaxCandidates = 1024;

    private readonly SamplingOptions _options;
    private readonly Random _random;

    public TokenSampler(SamplingOptions options)
    {
        _options = options.Validate();
        _random = options.Seed is { } seed ? new Random(seed) : new Random();
    }

    /// <summary>The index of the chosen token in <paramref name="logits"/>; greedy ties go to the lowest index.</summary>
    public int Sample(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("A head has no logits.", nameof(logits));
        }

        if (_options.IsGreedy)
        {
            return TensorPrimitives.IndexOfMax(logits);
        }

        int limit = Math.Min(logits.Length, _options.TopK > 0 ? Math.Min(_options.TopK, MaxCandidates) : MaxCandidates);
        int[] candidates = MostLikely(logits, limit);
        var weights = new float[candidates.Length];
        for (int i = 0; i < candidates.Length; i++)
        {
            weights[i] = logits[candidates[i]] / _options.Temperature;
        }

        TensorPrimitives.SoftMax(weights, weights);
        int kept = weights.Length;
        if (_options.TopP < 1)
        {
            float mass = 0;
            for (kept = 0; kept < weights.Length && mass < _options.TopP; kept++)
            {
                mass += weights[kept];
            }
        }

        float draw = (float)_random.NextDouble() * TensorPrimitives.Sum(weights.AsSpan(0, kept));
        for (int i = 0; i < kept; i++)
        {
            draw -= weights[i];
            if (draw <= 0)
            {
                return candidates[i];
            }
        }

        return candidates[kept - 1];
    }

    // The indices of the `count` largest logits, most likely first (a bounded min-heap: one pass over the head).
    private static int[] MostLikely(ReadOnlySpan<float> logits, int count)
    {
        var heap = new PriorityQueue<int, (float Logit, int NegativeIndex)>(count + 1);
        for (int i = 0; i < logits.Length; i++)
        {
            if (heap.Count < count)
            {
                heap.Enqueue(i, (logits[i], -i));
            }
            else if (heap.TryPeek(out _, out var smallest) && (logits[i], -i).CompareTo(smallest) > 0)
            {
                heap.EnqueueDequeue(i, (logits[i], -i));
            }
        }

        var result = new int[heap.Count];
        for (int i = result.Length - 1; i >= 0; i--)
        {
            result[i] = heap.Dequeue();
        }

        return result;
    }
}
