using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// How a Mini-Omni realtime session transcribes its spoken user turns. A plain <see cref="TranscriptionOptions"/>, or none,
/// leaves it to <see cref="MiniOmniRealtimeClientOptions.TranscribeUserSpeech"/>; this one can turn it off for one session
/// (OpenAI's <c>session.audio.input.transcription: null</c>).
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class MiniOmniTranscriptionOptions : TranscriptionOptions
{
    /// <summary>Whether spoken user turns are transcribed; false turns it off whatever the client's options say.</summary>
    public bool Enabled { get; set; } = true;
}
