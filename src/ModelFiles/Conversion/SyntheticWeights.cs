using System.Text;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>
/// Deterministic random weights of the right shapes, for benchmarks and tests without downloads. Each tensor's values
/// depend only on the seed and its name, so a tensor can be regenerated on its own in any order.
/// </summary>
public sealed class SyntheticWeights(int seed)
{
    // The scale transformer initialisations use: keeps random activations in a realistic range.
    private const float WeightStd = 0.02f;

    /// <summary>Values for the tensor <paramref name="name"/> of <paramref name="shape"/>: ones for norm scales and Snake alphas, small noise elsewhere.</summary>
    public float[] Generate(string name, long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[count];
        if (IsScale(name, shape))
        {
            Array.Fill(values, 1f);
            return values;
        }

        // Uniform on [-a, a] has the standard deviation a / sqrt(3).
        float amplitude = WeightStd * MathF.Sqrt(3f) * (name.EndsWith(".bias", StringComparison.Ordinal) ? 0.5f : 1f);
        ulong state = Mix((ulong)seed ^ Fnv1a(name));
        for (long i = 0; i < values.LongLength; i++)
        {
            // xorshift64*: fast and good enough for weights nobody will read.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ulong bits = state * 0x2545F4914F6CDD1DUL;
            values[i] = ((bits >> 40) * (1f / (1 << 24)) * 2f - 1f) * amplitude;
        }

        return values;
    }

    private static bool IsScale(string name, long[] shape) =>
        name.EndsWith(".alpha", StringComparison.Ordinal)
        || (shape.Count(d => d > 1) <= 1 && name.EndsWith(".weight", StringComparison.Ordinal)
            && (name.Contains("norm", StringComparison.Ordinal) || name.Contains("_ln", StringComparison.Ordinal) || name.Contains("ln_", StringComparison.Ordinal)));

    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash;
    }

    private static ulong Mix(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        x ^= x >> 31;
        return x == 0 ? 1 : x;
    }
}
