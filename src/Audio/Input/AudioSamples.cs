namespace MiniOmni.SK.Audio;

/// <summary>Checks on samples handed over directly, without a container to decode.</summary>
public static class AudioSamples
{
    /// <summary>The index of the first NaN or infinite sample, or -1 when every sample is finite.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> samples)
    {
        for (int i = 0; i < samples.Length; i++)
        {
            if (!float.IsFinite(samples[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first NaN or infinite sample (16 kHz samples, as the engine takes them).</summary>
    public static void ThrowIfNotFinite(ReadOnlySpan<float> samples, string paramName)
    {
        int bad = IndexOfNonFinite(samples);
        if (bad >= 0)
        {
            throw new ArgumentException(
                $"Audio sample {bad} (at {bad / (double)WhisperLogMel.SampleRate:0.###} s at 16 kHz) is {samples[bad]}; samples must be finite.",
                paramName);
        }
    }
}
