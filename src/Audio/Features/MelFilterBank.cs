namespace MiniOmni.SK.Audio;

/// <summary>
/// librosa's <c>filters.mel</c> with its defaults (Slaney mel scale, htk=False, Slaney area norm), which is
/// what Whisper's <c>mel_filters.npz</c> holds. Each filter is stored as its non-zero run of FFT bins.
/// </summary>
internal sealed class MelFilterBank
{
    private const double LinearHzPerMel = 200.0 / 3;
    private const double LogRegionStartHz = 1000.0;
    private const double LogRegionStartMel = LogRegionStartHz / LinearHzPerMel;
    private static readonly double LogStep = Math.Log(6.4) / 27.0;

    private MelFilterBank(int[] firstBins, double[][] weights)
    {
        FirstBins = firstBins;
        Weights = weights;
    }

    /// <summary>Index of the first FFT bin each filter covers.</summary>
    public int[] FirstBins { get; }

    /// <summary>The non-zero weights of each filter, starting at its first bin.</summary>
    public double[][] Weights { get; }

    public int MelCount => Weights.Length;

    /// <summary>Builds the filters for <c>filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2)</c>.</summary>
    public static MelFilterBank Create(int sampleRate, int fftSize, int melCount)
    {
        int binCount = (fftSize / 2) + 1;
        double binHz = (double)sampleRate / fftSize;

        // n_mels + 2 edges evenly spaced on the mel scale, computed as numpy.linspace does (start + i * step).
        double maxMel = HzToMel(sampleRate / 2.0);
        double melStep = maxMel / (melCount + 1);
        var edgesHz = new double[melCount + 2];
        for (int i = 0; i < edgesHz.Length; i++)
        {
            edgesHz[i] = MelToHz(i == edgesHz.Length - 1 ? maxMel : i * melStep);
        }

        var firstBins = new int[melCount];
        var weights = new double[melCount][];
        var dense = new double[binCount];
        for (int m = 0; m < melCount; m++)
        {
            double lowerWidth = edgesHz[m + 1] - edgesHz[m];
            double upperWidth = edgesHz[m + 2] - edgesHz[m + 1];
            double areaNorm = 2.0 / (edgesHz[m + 2] - edgesHz[m]);
            int first = -1;
            int last = -1;
            for (int bin = 0; bin < binCount; bin++)
            {
                double hz = bin * binHz;
                double rising = (hz - edgesHz[m]) / lowerWidth;
                double falling = (edgesHz[m + 2] - hz) / upperWidth;
                double triangle = Math.Max(0.0, Math.Min(rising, falling));

                // librosa stores float32 weights, then scales them in place (float64 product, stored back as float32).
                dense[bin] = (float)((float)triangle * areaNorm);
                if (dense[bin] != 0)
                {
                    first = first < 0 ? bin : first;
                    last = bin;
                }
            }

            firstBins[m] = Math.Max(first, 0);
            weights[m] = first < 0 ? [] : dense[first..(last + 1)];
        }

        return new MelFilterBank(firstBins, weights);
    }

    /// <summary>Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above.</summary>
    internal static double HzToMel(double hz) =>
        hz >= LogRegionStartHz ? LogRegionStartMel + (Math.Log(hz / LogRegionStartHz) / LogStep) : hz / LinearHzPerMel;

    /// <summary>Inverse of <see cref="HzToMel"/>.</summary>
    internal static double MelToHz(double mel) =>
        mel >= LogRegionStartMel ? LogRegionStartHz * Math.Exp(LogStep * (mel - LogRegionStartMel)) : LinearHzPerMel * mel;
}
