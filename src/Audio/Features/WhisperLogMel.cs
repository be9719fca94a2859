using System.Numerics;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Whisper's <c>log_mel_spectrogram</c> for one 30 s window of 16 kHz mono audio, reproduced in double precision:
/// periodic-Hann STFT (n_fft 400, hop 160, centred with reflect padding), power, 80 Slaney mel filters, log10,
/// a floor 8 decades below the peak, and the (x + 4) / 4 scaling.
/// </summary>
public static class WhisperLogMel
{
    /// <summary>The sample rate Whisper works at.</summary>
    public const int SampleRate = 16000;

    /// <summary>Samples in the 30 s window every input is padded or cut to.</summary>
    public const int WindowSampleCount = 30 * SampleRate;

    /// <summary>STFT frame length (n_fft).</summary>
    public const int FftSize = 400;

    /// <summary>STFT hop between frames.</summary>
    public const int HopLength = 160;

    /// <summary>Mel bins per frame.</summary>
    public const int MelBinCount = 80;

    /// <summary>Frames in the window: the STFT's 3001 centred frames minus the last one, as Whisper drops it.</summary>
    public const int FrameCount = WindowSampleCount / HopLength;

    /// <summary>Length of the output: <see cref="MelBinCount"/> x <see cref="FrameCount"/>.</summary>
    public const int OutputLength = MelBinCount * FrameCount;

    private const int BinCount = (FftSize / 2) + 1;
    private const int CenterPadding = FftSize / 2;
    private const double MinPower = 1e-10;
    private const double DynamicRangeDecades = 8.0;

    private static readonly Lazy<MelFilterBank> Filters = new(() => MelFilterBank.Create(SampleRate, FftSize, MelBinCount));
    private static readonly Lazy<MixedRadixFft> Fft = new(() => new MixedRadixFft(FftSize));
    private static readonly Lazy<double[]> HannWindow = new(CreatePeriodicHann);

    /// <summary>Encoder frames in the window: the encoder's second convolution halves the <see cref="FrameCount"/> mel frames.</summary>
    public const int EncoderFrameCount = FrameCount / 2;

    /// <summary>
    /// Encoder frames (20 ms each) Mini-Omni keeps for <paramref name="sampleCount"/> samples at 16 kHz:
    /// <c>floor(duration_ms / 20) + 1</c>, at most <see cref="EncoderFrameCount"/>.
    /// </summary>
    /// <remarks>
    /// The release's formula gives 1501 at exactly 30 s (480,000 samples), one more than the encoder yields; there the
    /// release itself fails (its 1500 feature rows do not fill the 1501 prompt positions it sized from the formula), so
    /// the count is clamped to the 1500 frames the window has. Below 30 s the result is the release's, exactly.
    /// </remarks>
    public static int FeatureFrameCount(int sampleCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sampleCount);

        // Evaluated in doubles exactly as the reference does (int((len / 16000) * 1000 / 20) + 1): exact integer
        // arithmetic gives one frame more at counts such as 64320, where 4.02 s * 1000 rounds to 4019.999...
        double durationMs = sampleCount / (double)SampleRate * 1000.0;
        return (int)Math.Min(EncoderFrameCount, (durationMs / 20.0) + 1);
    }

    /// <summary>Computes the log-mel spectrogram, row-major [mel bin, frame], of the first 30 s of <paramref name="samples"/> (zero-padded if shorter).</summary>
    public static float[] Compute(ReadOnlySpan<float> samples)
    {
        var result = new float[OutputLength];
        Compute(samples, result);
        return result;
    }

    /// <summary>Writes the log-mel spectrogram, row-major [mel bin, frame], into <paramref name="destination"/> of <see cref="OutputLength"/> floats.</summary>
    public static void Compute(ReadOnlySpan<float> samples, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, OutputLength, nameof(destination));

        double[] padded = PadToCenteredWindow(samples);
        var mel = new double[OutputLength];
        ComputeMelPower(padded, mel);
        ToWhisperLogScale(mel, destination[..OutputLength]);
    }

    /// <summary>The window padded or cut to 30 s, then reflect-padded by n_fft / 2 on both sides (torch.stft center=True).</summary>
    private static double[] PadToCenteredWindow(ReadOnlySpan<float> samples)
    {
        var padded = new double[WindowSampleCount + (2 * CenterPadding)];
        var window = samples[..Math.Min(samples.Length, WindowSampleCount)];
        for (int i = 0; i < window.Length; i++)
        {
            padded[CenterPadding + i] = window[i];
        }

        int lastSample = CenterPadding + WindowSampleCount - 1;
        for (int offset = 1; offset <= CenterPadding; offset++)
        {
            padded[CenterPadding - offset] = padded[CenterPadding + offset];
            padded[lastSample + offset] = padded[lastSample - offset];
        }

        return padded;
    }

    /// <summary>Mel-filtered power spectrum of every frame, [mel bin, frame].</summary>
    private static void ComputeMelPower(double[] padded, double[] mel)
    {
        var fft = Fft.Value;
        var filters = Filters.Value;
        double[] hann = HannWindow.Value;
        var packed = new Complex[FftSize];
        var spectrum = new Complex[FftSize];
        var evenPower = new double[BinCount];
        var oddPower = new double[BinCount];

        // Both frames of a pair are real, so one complex FFT carries them: the even frame in the real part, the odd in the
        // imaginary. FrameCount (3000) is even, so every frame has a partner.
        for (int frame = 0; frame < FrameCount; frame += 2)
        {
            int evenStart = frame * HopLength;
            int oddStart = evenStart + HopLength;
            for (int n = 0; n < FftSize; n++)
            {
                packed[n] = new Complex(padded[evenStart + n] * hann[n], padded[oddStart + n] * hann[n]);
            }

            fft.Forward(packed, spectrum);
            for (int k = 0; k < BinCount; k++)
            {
                // Z[k] = A[k] + i B[k] and conj(Z[N - k]) = A[k] - i B[k] for real a, b.
                Complex z = spectrum[k];
                Complex mirror = Complex.Conjugate(spectrum[(FftSize - k) % FftSize]);
                Complex sum = z + mirror;
                Complex difference = z - mirror;
                evenPower[k] = ((sum.Real * sum.Real) + (sum.Imaginary * sum.Imaginary)) * 0.25;
                oddPower[k] = ((difference.Real * difference.Real) + (difference.Imaginary * difference.Imaginary)) * 0.25;
            }

            ApplyFilters(filters, evenPower, mel, frame);
            ApplyFilters(filters, oddPower, mel, frame + 1);
        }
    }

    private static void ApplyFilters(MelFilterBank filters, double[] power, double[] mel, int frame)
    {
        for (int m = 0; m < MelBinCount; m++)
        {
            double[] weights = filters.Weights[m];
            int first = filters.FirstBins[m];
            double sum = 0;
            for (int i = 0; i < weights.Length; i++)
            {
                sum += weights[i] * power[first + i];
            }

            mel[(m * FrameCount) + frame] = sum;
        }
    }

    /// <summary>log10 with a 1e-10 floor, clamp to 8 decades below the peak of the whole window, then (x + 4) / 4.</summary>
    private static void ToWhisperLogScale(double[] mel, Span<float> destination)
    {
        double peak = double.NegativeInfinity;
        for (int i = 0; i < mel.Length; i++)
        {
            mel[i] = Math.Log10(Math.Max(mel[i], MinPower));
            peak = Math.Max(peak, mel[i]);
        }

        double floor = peak - DynamicRangeDecades;
        for (int i = 0; i < mel.Length; i++)
        {
            destination[i] = (float)((Math.Max(mel[i], floor) + 4.0) / 4.0);
        }
    }

    private static double[] CreatePeriodicHann()
    {
        // torch.hann_window(n) is periodic: the denominator is n, not n - 1.
        var window = new double[FftSize];
        for (int n = 0; n < FftSize; n++)
        {
            window[n] = 0.5 - (0.5 * Math.Cos(2.0 * Math.PI * n / FftSize));
        }

        return window;
    }
}
