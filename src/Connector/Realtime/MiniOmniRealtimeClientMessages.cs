using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>
/// Drops the input audio not yet committed (OpenAI's <c>input_audio_buffer.clear</c>, which Microsoft.Extensions.AI 11.0
/// has no message for); the session answers with <see cref="MiniOmniRealtimeServerMessageTypes.InputAudioCleared"/>.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class InputAudioBufferClearRealtimeClientMessage : RealtimeClientMessage;

/// <summary>
/// Stops the answers still generating (OpenAI's <c>response.cancel</c>, which Microsoft.Extensions.AI 11.0 has no message
/// for): each ends with its response-done, status cancelled. Nothing generating is not an error.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic, UrlFormat = RealtimeExperiment.UrlFormat)]
public sealed class CancelResponseRealtimeClientMessage : RealtimeClientMessage
{
    /// <summary>The response to stop; null stops every answer still generating.</summary>
    public string? ResponseId { get; set; }
}
