using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK;

/// <summary>What an answer contains.</summary>
public enum MiniOmniOutput
{
    /// <summary>Text only.</summary>
    Text,
    /// <summary>Text and speech (24 kHz), produced together.</summary>
    TextAndSpeech,
}

/// <summary>How a spoken question is answered.</summary>
public enum MiniOmniMode
{
    /// <summary>One sequence that speaks and writes (the release's default).</summary>
    Single,
    /// <summary>The release's batch-parallel mode: a text-only "thinking" sequence beside the speaking one feeds it its text.</summary>
    BatchParallel,
}

/// <summary>
/// MiniOmni.SK's own chat options. They ride in <see cref="ChatOptions.AdditionalProperties"/> under the keys below (as
/// strings, so that they survive Semantic Kernel's JSON round trip of execution settings); set them with the extension
/// methods.
/// </summary>
public static class MiniOmniChatOptions
{
    /// <summary>Key of <see cref="MiniOmniOutput"/>: <c>text</c> or <c>text_and_speech</c>. Default: speech when the question is spoken.</summary>
    public const string OutputKey = "miniomni_output";

    /// <summary>Key of <see cref="MiniOmniMode"/>: <c>single</c> or <c>batch_parallel</c>.</summary>
    public const string ModeKey = "miniomni_mode";

    /// <summary>Key of <see cref="EncoderMode"/>: <c>exact</c> or <c>fast</c>.</summary>
    public const string EncoderModeKey = "miniomni_encoder_mode";

    /// <summary>Asks for <paramref name="output"/>.</summary>
    public static ChatOptions WithMiniOmniOutput(this ChatOptions options, MiniOmniOutput output) => Set(options, OutputKey, output == MiniOmniOutput.Text ? "text" : "text_and_speech");

    /// <summary>Answers spoken questions in <paramref name="mode"/>.</summary>
    public static ChatOptions WithMiniOmniMode(this ChatOptions options, MiniOmniMode mode) => Set(options, ModeKey, mode == MiniOmniMode.Single ? "single" : "batch_parallel");

    /// <summary>Encodes spoken questions with <paramref name="mode"/>.</summary>
    public static ChatOptions WithEncoderMode(this ChatOptions options, EncoderMode mode) => Set(options, EncoderModeKey, mode == EncoderMode.Exact ? "exact" : "fast");

    internal static MiniOmniOutput? Output(ChatOptions? options) => Read(options?.AdditionalProperties, OutputKey, "text", MiniOmniOutput.Text, "text_and_speech", MiniOmniOutput.TextAndSpeech);

    internal static MiniOmniMode Mode(ChatOptions? options) => Read(options?.AdditionalProperties, ModeKey, "single", MiniOmniMode.Single, "batch_parallel", MiniOmniMode.BatchParallel) ?? MiniOmniMode.Single;

    internal static EncoderMode Encoder(ChatOptions? options) => Encoder(options?.AdditionalProperties);

    internal static EncoderMode Encoder(AdditionalPropertiesDictionary? properties) => Read(properties, EncoderModeKey, "exact", EncoderMode.Exact, "fast", EncoderMode.Fast) ?? EncoderMode.Exact;

    private static ChatOptions Set(ChatOptions options, string key, string value)
    {
        ArgumentNullException.ThrowIfNull(options);
        (options.AdditionalProperties ??= [])[key] = value;
        return options;
    }

    // One of two enum values by name, from additional properties: "batch_parallel", "batch-parallel" and "BatchParallel" alike.
    internal static T? Read<T>(AdditionalPropertiesDictionary? properties, string key, string firstName, T first, string secondName, T second)
        where T : struct, Enum
    {
        if (properties?.TryGetValue(key, out object? value) is not true || value is null)
        {
            return null;
        }

        string? text = value switch
        {
            T typed => typed.ToString(),
            JsonElement { ValueKind: JsonValueKind.String } json => json.GetString(),
            _ => Convert.ToString(value, CultureInfo.InvariantCulture),
        };
        // "batch_parallel", "batch-parallel" and "BatchParallel" all name the same value.
        string normalized = text?.Trim().Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal).ToLowerInvariant() ?? "";
        return normalized == first.ToString().ToLowerInvariant() ? first
            : normalized == second.ToString().ToLowerInvariant() ? second
            : throw new ArgumentException($"The option {key} is '{text}'; expected '{firstName}' or '{secondName}'.", nameof(properties));
    }
}
