namespace MiniOmni.SK.Speech;

/// <summary>
/// SNAC's three codebooks for <see cref="FrameCount"/> frames: codebook 0 has one code per frame, codebook 1 two,
/// codebook 2 four, in time order (one frame is 2048 samples of 24 kHz speech).
/// </summary>
internal sealed record SnacCodes(int[] Coarse, int[] Middle, int[] Fine)
{
    /// <summary>Codes per frame in each codebook.</summary>
    public static readonly int[] CodesPerFrame = [1, 2, 4];

    /// <summary>Frames the codes cover.</summary>
    public int FrameCount => Coarse.Length;

    /// <summary>The codebooks in order.</summary>
    public int[][] Codebooks => [Coarse, Middle, Fine];

    /// <summary>
    /// Assembles frames of seven audio tokens (a0..a6 of one delayed step): codebook 0 gets a0, codebook 1 gets a1 then a4,
    /// codebook 2 gets a2, a3, a5, a6, as Mini-Omni's release orders them.
    /// </summary>
    public static SnacCodes FromFrames(IReadOnlyList<int[]> frames)
    {
        var coarse = new int[frames.Count];
        var middle = new int[2 * frames.Count];
        var fine = new int[4 * frames.Count];
        for (int n = 0; n < frames.Count; n++)
        {
            int[] a = frames[n];
            if (a.Length != 7)
            {
                throw new ArgumentException($"Frame {n} has {a.Length} tokens; a SNAC frame has 7.", nameof(frames));
            }

            coarse[n] = a[0];
            (middle[2 * n], middle[2 * n + 1]) = (a[1], a[4]);
            (fine[4 * n], fine[4 * n + 1], fine[4 * n + 2], fine[4 * n + 3]) = (a[2], a[3], a[5], a[6]);
        }

        return new SnacCodes(coarse, middle, fine);
    }

    /// <summary>Frames [<paramref name="start"/>, start + <paramref name="count"/>) of these codes.</summary>
    public SnacCodes Slice(int start, int count)
    {
        if (start < 0 || count <= 0 || start + count > FrameCount)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"Frames [{start}, {start + count}) are outside {FrameCount} frames.");
        }

        return new SnacCodes(Coarse[start..(start + count)], Middle[(2 * start)..(2 * (start + count))], Fine[(4 * start)..(4 * (start + count))]);
    }
}

/// <summary>
/// Mini-Omni's delay pattern: audio layer i starts i + 1 steps after the first step, so frame n is
/// (a0[n + 1], a1[n + 2], ..., a6[n + 7]) of the generated streams.
/// </summary>
internal static class DelayPattern
{
    /// <summary>Audio layers per step.</summary>
    public const int LayerCount = 7;

    /// <summary>The number of complete frames once <paramref name="steps"/> steps have been generated.</summary>
    public static int CompleteFrames(int steps) => Math.Max(0, steps - LayerCount);

    /// <summary>Frame <paramref name="frame"/>'s seven tokens from the generated (unshifted) audio streams.</summary>
    public static int[] Frame(IReadOnlyList<IReadOnlyList<int>> layers, int frame)
    {
        var tokens = new int[LayerCount];
        for (int layer = 0; layer < LayerCount; layer++)
        {
            tokens[layer] = layers[layer][frame + layer + 1];
        }

        return tokens;
    }

    /// <summary>Every complete frame of the generated streams, as SNAC codes.</summary>
    public static SnacCodes Frames(IReadOnlyList<IReadOnlyList<int>> layers)
    {
        if (layers.Count != LayerCount)
        {
            throw new ArgumentException($"Speech has {LayerCount} audio layers; got {layers.Count}.", nameof(layers));
        }

        int frames = CompleteFrames(layers.Min(l => l.Count));
        return SnacCodes.FromFrames([.. Enumerable.Range(0, frames).Select(n => Frame(layers, n))]);
    }
}
