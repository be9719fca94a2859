using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// Server-side turn detection of a Mini-Omni realtime session: an energy detector with hysteresis over 20 ms frames.
/// A plain <see cref="VoiceActivityDetectionOptions"/> gets these defaults.
/// </summary>
/// <remarks>
/// Speech starts when frames reach <see cref="ThresholdDb"/> for <see cref="MinimumSpeechDuration"/>, and stops after
/// <see cref="SilenceDuration"/> of frames below <see cref="ThresholdDb"/> minus <see cref="HysteresisDb"/>. The detector
/// measures loudness only: steady noise louder than the threshold counts as speech, so raise the threshold in noisy rooms.
/// </remarks>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class MiniOmniVoiceActivityDetectionOptions : VoiceActivityDetectionOptions
{
    /// <summary>The frame level (RMS, dB relative to full scale) at which speech starts; a full-scale sine is -3 dB.</summary>
    public double ThresholdDb { get; set; } = -40;

    /// <summary>How far below <see cref="ThresholdDb"/> speech that has started may fall before it counts as silence.</summary>
    public double HysteresisDb { get; set; } = 6;

    /// <summary>How long sound must last to start a turn; shorter clicks and knocks are ignored.</summary>
    public TimeSpan MinimumSpeechDuration { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long the speaker must be quiet for the turn to end and be committed.</summary>
    public TimeSpan SilenceDuration { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Audio kept from before the detected start of speech, so the committed turn does not begin mid-word.</summary>
    public TimeSpan PrefixPadding { get; set; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Whether a turn ended by the detector is answered at once; otherwise the client asks with a response-create message.</summary>
    public bool CreateResponse { get; set; } = true;

    /// <summary>The detector's settings from any MEAI options: the thresholds of <paramref name="options"/> when it is ours, else the defaults.</summary>
    internal static MiniOmniVoiceActivityDetectionOptions From(VoiceActivityDetectionOptions options) =>
        options as MiniOmniVoiceActivityDetectionOptions ?? new MiniOmniVoiceActivityDetectionOptions
        {
            Enabled = options.Enabled,
            AllowInterruption = options.AllowInterruption,
        };
}
