namespace MiniOmni.SK.Audio;

/// <summary>One piece of a long recording: the samples Mini-Omni hears at once, and where speech is in them.</summary>
/// <param name="Start">The first sample of the window (16 kHz).</param>
/// <param name="Length">The window's samples; at most <see cref="SpeechWindowOptions.MaxWindow"/>.</param>
/// <param name="SpeechStart">The first sample of the window's first sounding frame.</param>
/// <param name="SpeechEnd">The sample after the window's last sounding frame; equal to <paramref name="SpeechStart"/> when the window is silent.</param>
public readonly record struct SpeechWindow(int Start, int Length, int SpeechStart, int SpeechEnd)
{
    /// <summary>Whether nothing in the window sounds (it is not worth transcribing).</summary>
    public bool IsSilent => SpeechEnd <= SpeechStart;

    /// <summary>When the window's speech starts in the recording.</summary>
    public TimeSpan SpeechStartTime => Time(SpeechStart);

    /// <summary>When the window's speech ends in the recording.</summary>
    public TimeSpan SpeechEndTime => Time(SpeechEnd);

    /// <summary>The window's samples out of the whole recording.</summary>
    public ReadOnlyMemory<float> Slice(ReadOnlyMemory<float> recording) => recording.Slice(Start, Length);

    private static TimeSpan Time(int sample) => TimeSpan.FromSeconds(sample / (double)WhisperLogMel.SampleRate);
}

/// <summary>How <see cref="SpeechWindows"/> cuts a recording.</summary>
public sealed record SpeechWindowOptions
{
    /// <summary>The defaults: windows of at most Whisper's 30 s, cut at the longest pause in their second half.</summary>
    public static SpeechWindowOptions Default { get; } = new();

    /// <summary>The longest window (at most Whisper's 30 s, which is what Mini-Omni hears).</summary>
    public TimeSpan MaxWindow { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The shortest window cut from a longer recording: the pause is looked for between this and <see cref="MaxWindow"/>.</summary>
    public TimeSpan MinWindow { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A frame is silent when its loudness (RMS) is under this fraction of the recording's loud frames (its 95th percentile).</summary>
    public double SilenceFraction { get; init; } = 0.05;

    /// <summary>A frame quieter than this RMS is silent whatever the recording's loudness (about -60 dBFS).</summary>
    public double SilenceFloor { get; init; } = 0.001;
}

/// <summary>
/// Cuts a recording longer than Mini-Omni can hear into windows of at most 30 s, each cut in the middle of the longest
/// pause in its second half (so that a word is rarely split), or at its quietest moment when it has no pause. Loudness
/// is measured in 20 ms frames.
/// </summary>
public static class SpeechWindows
{
    /// <summary>The loudness frame: 20 ms at 16 kHz.</summary>
    public const int FrameSamples = WhisperLogMel.SampleRate / 50;

    /// <summary>The windows of <paramref name="samples"/> (16 kHz mono), in order, covering it all.</summary>
    public static IReadOnlyList<SpeechWindow> Split(ReadOnlySpan<float> samples, SpeechWindowOptions? options = null)
    {
        options ??= SpeechWindowOptions.Default;
        int maxWindow = (int)(options.MaxWindow.TotalSeconds * WhisperLogMel.SampleRate);
        int minWindow = (int)(options.MinWindow.TotalSeconds * WhisperLogMel.SampleRate);
        if (maxWindow < FrameSamples || maxWindow > WhisperLogMel.WindowSampleCount)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxWindow, "MaxWindow must be 20 ms to 30 s.");
        }

        if (minWindow <= 0 || minWindow > maxWindow)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MinWindow, "MinWindow must be over 0 and at most MaxWindow.");
        }

        if (samples.IsEmpty)
        {
            return [];
        }

        float[] loudness = FrameLoudness(samples);
        double silence = Math.Max(options.SilenceFloor, options.SilenceFraction * Percentile(loudness, 0.95));
        var windows = new List<SpeechWindow>();
        int start = 0;
        while (start < samples.Length)
        {
            int end = samples.Length - start <= maxWindow ? samples.Length : Cut(loudness, start, minWindow, maxWindow, silence);
            windows.Add(Speech(loudness, start, end, silence));
            start = end;
        }

        return windows;
    }

    // The cut between start + minWindow and start + maxWindow, on frame boundaries: the middle of the longest silent run
    // (the later on a tie), else the quietest frame.
    private static int Cut(float[] loudness, int start, int minWindow, int maxWindow, double silence)
    {
        int first = (start + minWindow + FrameSamples - 1) / FrameSamples;
        int last = (start + maxWindow) / FrameSamples; // the frame that starts at the window's end
        int bestRunStart = -1, bestRunLength = 0, runStart = -1;
        int quietest = last;
        for (int frame = first; frame <= last; frame++)
        {
            bool silent = frame < loudness.Length && loudness[frame] < silence;
            if (silent)
            {
                runStart = runStart < 0 ? frame : runStart;
                int length = frame - runStart + 1;
                if (length >= bestRunLength)
                {
                    bestRunStart = runStart;
                    bestRunLength = length;
                }
            }
            else
            {
                runStart = -1;
            }

            if (frame < loudness.Length && frame < last && loudness[frame] <= loudness[Math.Min(quietest, loudness.Length - 1)])
            {
                quietest = frame;
            }
        }

        int cutFrame = bestRunLength > 0 ? bestRunStart + (bestRunLength / 2) : quietest;
        return Math.Clamp(cutFrame * FrameSamples, start + 1, start + maxWindow);
    }

    private static SpeechWindow Speech(float[] loudness, int start, int end, double silence)
    {
        int firstFrame = start / FrameSamples, lastFrame = (end - 1) / FrameSamples;
        int speechStart = -1, speechEnd = -1;
        for (int frame = firstFrame; frame <= lastFrame; frame++)
        {
            if (loudness[frame] >= silence)
            {
                speechStart = speechStart < 0 ? Math.Max(start, frame * FrameSamples) : speechStart;
                speechEnd = Math.Min(end, (frame + 1) * FrameSamples);
            }
        }

        return speechStart < 0 ? new SpeechWindow(start, end - start, start, start) : new SpeechWindow(start, end - start, speechStart, speechEnd);
    }

    private static float[] FrameLoudness(ReadOnlySpan<float> samples)
    {
        var loudness = new float[(samples.Length + FrameSamples - 1) / FrameSamples];
        for (int frame = 0; frame < loudness.Length; frame++)
        {
            var part = samples.Slice(frame * FrameSamples, Math.Min(FrameSamples, samples.Length - (frame * FrameSamples)));
            double sum = 0;
            foreach (float sample in part)
            {
                sum += sample * (double)sample;
            }

            loudness[frame] = (float)Math.Sqrt(sum / part.Length);
        }

        return loudness;
    }

    private static double Percentile(float[] values, double fraction)
    {
        var sorted = (float[])values.Clone();
        Array.Sort(sorted);
        return sorted[Math.Min(sorted.Length - 1, (int)(fraction * sorted.Length))];
    }
}
