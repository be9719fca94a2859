namespace MiniOmni.SK;

/// <summary>The error codes a Mini-Omni realtime session puts on its error messages.</summary>
internal static class RealtimeErrorCodes
{
    public const string UnsupportedMessage = "unsupported_message";
    public const string UnsupportedAudioFormat = "unsupported_audio_format";
    public const string InvalidAudio = "invalid_audio";
    public const string InvalidSessionOptions = "invalid_session_options";
    public const string UnsupportedContent = "unsupported_content";
    public const string EmptyInputAudioBuffer = "input_audio_buffer_commit_empty";
    public const string NothingToAnswer = "nothing_to_answer";
    public const string ResponseFailed = "response_failed";
    public const string TranscriptionFailed = "transcription_failed";
    public const string ItemNotFound = "item_not_found";
    public const string InvalidItem = "invalid_item";
}

/// <summary>A client message a realtime session cannot act on; it becomes an error message on the session's stream, not a crash.</summary>
internal sealed class RealtimeRequestException(string errorCode, string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>One of <see cref="RealtimeErrorCodes"/>.</summary>
    public string ErrorCode { get; } = errorCode;
}
