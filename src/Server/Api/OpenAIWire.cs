using System.Text.Json;
using System.Text.Json.Serialization;

namespace MiniOmni.SK.Server.Api;

// The OpenAI API's wire format, as far as Mini-Omni serves it. Names are snake_case through ServerJsonContext.

/// <summary>POST /v1/chat/completions.</summary>
public sealed record ChatCompletionRequest
{
    public string? Model { get; init; }
    public List<ChatMessageWire>? Messages { get; init; }
    public List<string>? Modalities { get; init; }
    public AudioOutputWire? Audio { get; init; }
    public bool Stream { get; init; }
    public StreamOptionsWire? StreamOptions { get; init; }
    public int? MaxTokens { get; init; }
    public int? MaxCompletionTokens { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public long? Seed { get; init; }
    /// <summary>A string or an array of strings.</summary>
    public JsonElement? Stop { get; init; }
    public List<ToolWire>? Tools { get; init; }
    /// <summary>"none", "auto", "required" or {"type":"function","function":{"name":...}}.</summary>
    public JsonElement? ToolChoice { get; init; }
    /// <summary>{"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}.</summary>
    public JsonElement? ResponseFormat { get; init; }
    public int? N { get; init; }
    /// <summary>Mini-Omni's own: "single" or "batch_parallel".</summary>
    public string? MiniomniMode { get; init; }
    /// <summary>Mini-Omni's own: "exact" or "fast".</summary>
    public string? MiniomniEncoderMode { get; init; }
}

public sealed record ChatMessageWire
{
    public string? Role { get; init; }
    /// <summary>A string, an array of parts, or null.</summary>
    public JsonElement? Content { get; init; }
    public string? Name { get; init; }
    public List<ToolCallWire>? ToolCalls { get; init; }
    public string? ToolCallId { get; init; }
    /// <summary>An earlier spoken answer, by its id: <c>{"id": "audio_..."}</c>.</summary>
    public AudioReferenceWire? Audio { get; init; }
}

public sealed record AudioReferenceWire(string? Id);

/// <summary>The answer's speech: <c>voice</c> is a name or <c>{"id": ...}</c> (a custom voice).</summary>
public sealed record AudioOutputWire(JsonElement? Voice, string? Format);

public sealed record StreamOptionsWire(bool IncludeUsage);

public sealed record ToolWire(string? Type, FunctionWire? Function);

public sealed record FunctionWire(string? Name, string? Description, JsonElement? Parameters);

public sealed record ToolCallWire
{
    public int? Index { get; init; }
    public string? Id { get; init; }
    public string? Type { get; init; }
    public FunctionCallWire? Function { get; init; }
}

public sealed record FunctionCallWire(string? Name, string? Arguments);

public sealed record ChatCompletion
{
    public required string Id { get; init; }
    public string Object { get; init; } = "chat.completion";
    public required long Created { get; init; }
    public required string Model { get; init; }
    public required List<ChatChoice> Choices { get; init; }
    public UsageWire? Usage { get; init; }
}

public sealed record ChatChoice
{
    public int Index { get; init; }
    public required AssistantMessageWire Message { get; init; }
    public string? FinishReason { get; init; }
}

public sealed record AssistantMessageWire
{
    public string Role { get; init; } = "assistant";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Content { get; init; }
    public string? Refusal { get; init; }
    public AudioAnswerWire? Audio { get; init; }
    public List<ToolCallWire>? ToolCalls { get; init; }
}

/// <summary>An answer's speech: base64 audio and its transcript (the id and expiry OpenAI uses to refer back to it).</summary>
public sealed record AudioAnswerWire
{
    public required string Id { get; init; }
    public string? Data { get; init; }
    public long ExpiresAt { get; init; }
    public string? Transcript { get; init; }
}

public sealed record ChatCompletionChunk
{
    public required string Id { get; init; }
    public string Object { get; init; } = "chat.completion.chunk";
    public required long Created { get; init; }
    public required string Model { get; init; }
    public required List<ChunkChoice> Choices { get; init; }
    public UsageWire? Usage { get; init; }
}

public sealed record ChunkChoice
{
    public int Index { get; init; }
    public required ChunkDelta Delta { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; init; }
}

public sealed record ChunkDelta
{
    public string? Role { get; init; }
    public string? Content { get; init; }
    public AudioAnswerWire? Audio { get; init; }
    public List<ToolCallWire>? ToolCalls { get; init; }
}

public sealed record UsageWire(int PromptTokens, int CompletionTokens, int TotalTokens)
{
    public PromptTokensDetailsWire? PromptTokensDetails { get; init; }
    public CompletionTokensDetailsWire? CompletionTokensDetails { get; init; }
}

public sealed record PromptTokensDetailsWire(int AudioTokens, int CachedTokens);

public sealed record CompletionTokensDetailsWire(int AudioTokens, int ReasoningTokens, int AcceptedPredictionTokens, int RejectedPredictionTokens)
{
    public int? TextTokens { get; init; }
}

/// <summary>POST /v1/audio/speech.</summary>
public sealed record SpeechRequest
{
    public string? Model { get; init; }
    public string? Input { get; init; }
    public string? Voice { get; init; }
    public string? Instructions { get; init; }
    public string? ResponseFormat { get; init; }
    public float? Speed { get; init; }
    /// <summary>"audio" (the file, streamed as it is made) or "sse".</summary>
    public string? StreamFormat { get; init; }
}

/// <summary>An event of a streamed speech or transcription (<c>speech.audio.delta</c>, <c>transcript.text.delta</c>, ...).</summary>
public sealed record SpeechEvent(string Type, string? Audio = null, SpeechUsage? Usage = null)
{
    public string? Delta { get; init; }
    public string? Text { get; init; }
}

public sealed record SpeechUsage(int InputTokens, int OutputTokens, int TotalTokens);

public sealed record TranscriptionJson(string Text, TranscriptionUsage? Usage = null);

public sealed record TranscriptionUsage(string Type, int InputTokens, int OutputTokens, int TotalTokens);

public sealed record VerboseTranscriptionJson(string Task, string Language, double Duration, string Text, List<TranscriptionSegment> Segments);

public sealed record TranscriptionSegment(int Id, int Seek, double Start, double End, string Text, List<int> Tokens, float Temperature, float AvgLogprob, float CompressionRatio, float NoSpeechProb);

public sealed record ModelList(List<ModelWire> Data)
{
    public string Object { get; init; } = "list";
}

public sealed record ModelWire(string Id, long Created, string OwnedBy)
{
    public string Object { get; init; } = "model";
}

/// <summary>POST /v1/realtime/client_secrets.</summary>
public sealed record ClientSecretRequest
{
    public ExpiresAfterWire? ExpiresAfter { get; init; }
    /// <summary>A realtime or transcription session's configuration; its <c>type</c> is read.</summary>
    public JsonElement? Session { get; init; }
}

public sealed record ExpiresAfterWire(string? Anchor, int? Seconds);

public sealed record ClientSecretResponse(string Value, long ExpiresAt, ClientSecretSession Session);

public sealed record ClientSecretSession(string Type, string Id, string Model, long ExpiresAt)
{
    public string Object { get; init; } = "realtime.session";
}

/// <summary>OpenAI's error body.</summary>
public sealed record ErrorBody(ErrorWire Error);

public sealed record ErrorWire(string Message, string Type, [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param, [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

/// <summary>The source-generated serializer of every wire record.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, ReadCommentHandling = JsonCommentHandling.Skip)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(SpeechRequest))]
[JsonSerializable(typeof(SpeechEvent))]
[JsonSerializable(typeof(TranscriptionJson))]
[JsonSerializable(typeof(VerboseTranscriptionJson))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelWire))]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ClientSecretRequest))]
[JsonSerializable(typeof(ClientSecretResponse))]
internal sealed partial class ServerJsonContext : JsonSerializerContext;
