using System.Numerics;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Forward complex FFT of one fixed size in double precision, for sizes that are not powers of two
/// (Whisper's 400 = 4 * 4 * 5 * 5): recursive decimation in time with a radix-p butterfly per factor.
/// </summary>
internal sealed class MixedRadixFft
{
    private const int MaxStackRadix = 64;

    private readonly int[] factors;

    /// <summary>e^(-2 pi i k / Size) for k in [0, Size): every twiddle of every stage is one of these.</summary>
    private readonly Complex[] twiddles;

    public MixedRadixFft(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        factors = Factor(size);
        twiddles = new Complex[size];
        for (int k = 0; k < size; k++)
        {
            double angle = -2.0 * Math.PI * k / size;
            twiddles[k] = new Complex(Math.Cos(angle), Math.Sin(angle));
        }
    }

    public int Size { get; }

    /// <summary>Computes X[k] = sum_n x[n] e^(-2 pi i k n / Size); <paramref name="output"/> must not overlap <paramref name="input"/>.</summary>
    public void Forward(ReadOnlySpan<Complex> input, Span<Complex> output)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(input.Length, Size, nameof(input));
        ArgumentOutOfRangeException.ThrowIfNotEqual(output.Length, Size, nameof(output));
        if (Size == 1)
        {
            output[0] = input[0];
            return;
        }

        Transform(input, 1, output, 0);
    }

    private static int[] Factor(int size)
    {
        // Radix 4 first: fewest multiplications per output among the small radices.
        var result = new List<int>();
        int remaining = size;
        foreach (int radix in (ReadOnlySpan<int>)[4, 2, 3, 5])
        {
            while (remaining % radix == 0)
            {
                result.Add(radix);
                remaining /= radix;
            }
        }

        for (int radix = 7; remaining > 1; radix += 2)
        {
            while (remaining % radix == 0)
            {
                result.Add(radix);
                remaining /= radix;
            }
        }

        return [.. result];
    }

    /// <summary>DFT of the <paramref name="output"/>.Length samples input[0], input[stride], input[2 stride], ...</summary>
    private void Transform(ReadOnlySpan<Complex> input, int stride, Span<Complex> output, int factorIndex)
    {
        int n = output.Length;
        int radix = factors[factorIndex];
        int subSize = n / radix;

        // Split into `radix` interleaved sub-sequences, each transformed into its own block of the output.
        for (int j = 0; j < radix; j++)
        {
            if (subSize == 1)
            {
                output[j] = input[j * stride];
            }
            else
            {
                Transform(input[(j * stride)..], stride * radix, output.Slice(j * subSize, subSize), factorIndex + 1);
            }
        }

        int stageStep = Size / n;
        int radixStep = Size / radix;
        Span<Complex> terms = radix <= MaxStackRadix ? stackalloc Complex[radix] : new Complex[radix];
        for (int k = 0; k < subSize; k++)
        {
            for (int j = 0; j < radix; j++)
            {
                terms[j] = output[(j * subSize) + k] * twiddles[j * k * stageStep];
            }

            for (int q = 0; q < radix; q++)
            {
                Complex sum = terms[0];
                for (int j = 1; j < radix; j++)
                {
                    sum += terms[j] * twiddles[(j * q % radix) * radixStep];
                }

                output[(q * subSize) + k] = sum;
            }
        }
    }
}
