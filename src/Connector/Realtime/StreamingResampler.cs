using NAudio.Dsp;

namespace MiniOmni.SK;

/// <summary>
/// Resamples a mono stream pushed in chunks of any size, with the filter state carried from chunk to chunk, so the joined
/// output equals resampling the whole stream at once. NAudio's WdlResamplingSampleProvider pulls from its source and
/// flushes whenever a read comes back short, which suits files but not audio that arrives over time, so this drives the
/// same WDL resampler in its input-driven mode with the provider's filter settings. Not thread-safe.
/// </summary>
internal sealed class StreamingResampler
{
    private readonly WdlResampler? _resampler;
    private readonly double _ratio;

    /// <summary>Creates a resampler from <paramref name="inputRate"/> to <paramref name="outputRate"/> Hz; equal rates pass samples through.</summary>
    public StreamingResampler(int inputRate, int outputRate)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputRate);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputRate);
        InputRate = inputRate;
        OutputRate = outputRate;
        _ratio = (double)outputRate / inputRate;
        if (inputRate != outputRate)
        {
            _resampler = new WdlResampler();
            _resampler.SetMode(true, 2, false);
            _resampler.SetFilterParms();
            _resampler.SetFeedMode(true);
            _resampler.SetRates(inputRate, outputRate);
        }
    }

    /// <summary>The rate of the samples pushed in.</summary>
    public int InputRate { get; }

    /// <summary>The rate of the samples that come out.</summary>
    public int OutputRate { get; }

    /// <summary>Resamples the next <paramref name="input"/> samples and returns the output they complete.</summary>
    public float[] Resample(ReadOnlySpan<float> input)
    {
        if (_resampler is null)
        {
            return input.ToArray();
        }

        var output = new List<float>((int)(input.Length * _ratio) + 8);
        // The resampler's input buffer holds a bounded block, so long inputs go through in pieces.
        const int Block = 4096;
        var scratch = new float[(int)Math.Ceiling(Block * _ratio) + 16];
        while (!input.IsEmpty)
        {
            int count = Math.Min(Block, input.Length);
            int wanted = _resampler.ResamplePrepare(count, 1, out Span<float> into);
            int fed = Math.Min(count, wanted);
            input[..fed].CopyTo(into);
            int produced = _resampler.ResampleOut(scratch, fed, scratch.Length, 1);
            output.AddRange(scratch.AsSpan(0, produced));
            input = input[fed..];
        }

        return [.. output];
    }
}
