using System.Diagnostics.CodeAnalysis;

namespace MiniOmni.SK;

/// <summary>What the detector found.</summary>
internal enum VoiceActivityKind
{
    /// <summary>Speech began.</summary>
    SpeechStarted,

    /// <summary>Speech ended: the silence after it lasted long enough.</summary>
    SpeechStopped,
}

/// <summary>A pause in speech not yet long enough to end the turn (sample positions).</summary>
/// <param name="SpeechEnd">Where the last loud frame ended.</param>
/// <param name="DetectedAt">Where the pause had lasted long enough to be reported.</param>
internal readonly record struct SpeechPause(long SpeechEnd, long DetectedAt);

/// <summary>A change found by <see cref="VoiceActivityDetector"/>; every position counts samples from the start of the stream.</summary>
/// <param name="Kind">Whether speech started or stopped.</param>
/// <param name="SpeechPosition">Where speech started (its first loud frame) or stopped (the end of its last loud frame).</param>
/// <param name="DetectedAt">The end of the frame that decided it: speech start plus the minimum duration, or speech end plus the silence.</param>
/// <param name="TurnStart">For a start, where the turn's audio begins: the speech start less the prefix padding, never before 0.</param>
internal readonly record struct VoiceActivityEvent(VoiceActivityKind Kind, long SpeechPosition, long DetectedAt, long TurnStart);

/// <summary>
/// Finds where speech starts and stops in a stream of mono samples pushed in chunks of any size. It measures the RMS level
/// of 20 ms frames: a frame at or above the threshold opens a candidate, which becomes speech once it has lasted the
/// minimum duration without a frame under the lower (hysteresis) threshold; speech ends after the silence duration of
/// frames under the lower threshold. Decisions fall on frame boundaries, so the same samples in any chunking give the
/// same events. Not thread-safe.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class VoiceActivityDetector
{
    /// <summary>The length of one analysis frame.</summary>
    public static readonly TimeSpan FrameDuration = TimeSpan.FromMilliseconds(20);

    private readonly int _frameSamples;
    private readonly double _startDb;
    private readonly double _stopDb;
    private readonly int _startFrames;
    private readonly int _silenceFrames;
    private readonly int _pauseFrames;
    private readonly long _paddingSamples;

    private double _frameEnergy;
    private int _frameFill;
    private long _frameStart;
    private int _candidateFrames;
    private long _candidateStart;
    private int _silentFrames;
    private long _lastLoudEnd;

    /// <summary>Creates a detector for a stream at <paramref name="sampleRate"/> Hz.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the exception names it.</exception>
    public VoiceActivityDetector(MiniOmniVoiceActivityDetectionOptions options, int sampleRate)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(sampleRate, 1000);
        if (!double.IsFinite(options.ThresholdDb) || options.ThresholdDb >= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options.ThresholdDb), options.ThresholdDb, "The speech threshold is a level below full scale: a finite number of decibels under 0.");
        }

        if (!double.IsFinite(options.HysteresisDb) || options.HysteresisDb < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options.HysteresisDb), options.HysteresisDb, "The hysteresis is a finite number of decibels, 0 or more.");
        }

        ThrowIfNegative(options.MinimumSpeechDuration, nameof(options.MinimumSpeechDuration));
        ThrowIfNegative(options.PrefixPadding, nameof(options.PrefixPadding));
        if (options.SilenceDuration <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options.SilenceDuration), options.SilenceDuration, "The silence that ends a turn must last longer than 0.");
        }

        SampleRate = sampleRate;
        _frameSamples = (int)Math.Round(FrameDuration.TotalSeconds * sampleRate);
        _startDb = options.ThresholdDb;
        _stopDb = options.ThresholdDb - options.HysteresisDb;
        _startFrames = Math.Max(1, FramesIn(options.MinimumSpeechDuration));
        _silenceFrames = Math.Max(1, FramesIn(options.SilenceDuration));
        // Half the silence that ends a turn: early enough to get ahead of its end, late enough to skip the gaps between words.
        _pauseFrames = _silenceFrames / 2;
        _paddingSamples = (long)Math.Round(options.PrefixPadding.TotalSeconds * sampleRate);
    }

    /// <summary>The stream's sample rate.</summary>
    public int SampleRate { get; }

    /// <summary>Whether the stream is in speech (after a start, before its stop).</summary>
    public bool IsSpeaking { get; private set; }

    /// <summary>
    /// While speaking, the pause in progress once it has lasted half the silence that ends a turn (null before, and once
    /// speech resumes): where a listener may start on the turn's audio before the silence confirms its end.
    /// </summary>
    public SpeechPause? Pause { get; private set; }

    /// <summary>Samples pushed so far.</summary>
    public long Position => _frameStart + _frameFill;

    /// <summary>Pushes the next samples; the starts and stops they complete are added to <paramref name="found"/> in order.</summary>
    public void Process(ReadOnlySpan<float> samples, List<VoiceActivityEvent> found)
    {
        ArgumentNullException.ThrowIfNull(found);
        while (!samples.IsEmpty)
        {
            int take = Math.Min(samples.Length, _frameSamples - _frameFill);
            foreach (float sample in samples[..take])
            {
                _frameEnergy += (double)sample * sample;
            }

            _frameFill += take;
            samples = samples[take..];
            if (_frameFill == _frameSamples)
            {
                double level = 10 * Math.Log10(_frameEnergy / _frameSamples + 1e-12);
                long frameEnd = _frameStart + _frameSamples;
                if (Classify(level, frameEnd) is { } change)
                {
                    found.Add(change);
                }

                _frameStart = frameEnd;
                _frameEnergy = 0;
                _frameFill = 0;
            }
        }
    }

    /// <summary>Forgets any speech in progress (the turn was committed by other means); the position runs on.</summary>
    public void Reset()
    {
        IsSpeaking = false;
        Pause = null;
        _candidateFrames = 0;
        _silentFrames = 0;
    }

    private VoiceActivityEvent? Classify(double level, long frameEnd)
    {
        if (IsSpeaking)
        {
            if (level >= _stopDb)
            {
                _silentFrames = 0;
                _lastLoudEnd = frameEnd;
                Pause = null;
                return null;
            }

            if (++_silentFrames < _silenceFrames)
            {
                if (_silentFrames == _pauseFrames)
                {
                    Pause = new SpeechPause(_lastLoudEnd, frameEnd);
                }

                return null;
            }

            Reset();
            return new VoiceActivityEvent(VoiceActivityKind.SpeechStopped, _lastLoudEnd, frameEnd, 0);
        }

        if (level >= _startDb || (_candidateFrames > 0 && level >= _stopDb))
        {
            if (_candidateFrames++ == 0)
            {
                _candidateStart = _frameStart;
            }
        }
        else
        {
            _candidateFrames = 0;
        }

        if (_candidateFrames < _startFrames)
        {
            return null;
        }

        IsSpeaking = true;
        _candidateFrames = 0;
        _silentFrames = 0;
        _lastLoudEnd = frameEnd;
        return new VoiceActivityEvent(VoiceActivityKind.SpeechStarted, _candidateStart, frameEnd, Math.Max(0, _candidateStart - _paddingSamples));
    }

    private int FramesIn(TimeSpan duration) => (int)Math.Ceiling(Math.Round(duration.TotalSeconds * SampleRate) / _frameSamples);

    private static void ThrowIfNegative(TimeSpan value, string name)
    {
        if (value < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, value, "The duration cannot be negative.");
        }
    }
}
