using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK;

/// <summary>What Mini-Omni's text-to-speech says.</summary>
public enum MiniOmniSpeechMode
{
    /// <summary>The text itself, read aloud (text-forced decoding; the default).</summary>
    ReadAloud,
    /// <summary>Mini-Omni's spoken answer to the text (the release's T1A2 task), its written answer beside it.</summary>
    Answer,
}

/// <summary>
/// MiniOmni.SK's own text-to-speech and speech-to-text options. They ride in the options' <c>AdditionalProperties</c>
/// under the keys below (strings or numbers, so that they survive a JSON round trip); set the mode with the extension methods.
/// </summary>
public static class MiniOmniAudioOptions
{
    /// <summary>Key of <see cref="MiniOmniSpeechMode"/>: <c>read_aloud</c> (default) or <c>answer</c>.</summary>
    public const string SpeechModeKey = "miniomni_speech_mode";

    /// <summary>Key of the most steps of one answer (for read-aloud, of each sentence; it can only lower its own budget).</summary>
    public const string MaxTokensKey = "max_tokens";

    /// <summary>Key of the sampling temperature; 0 (default) is greedy, as released.</summary>
    public const string TemperatureKey = "temperature";

    /// <summary>Key of the nucleus sampling mass.</summary>
    public const string TopPKey = "top_p";

    /// <summary>Key of top-k sampling.</summary>
    public const string TopKKey = "top_k";

    /// <summary>Key of the sampler's seed.</summary>
    public const string SeedKey = "seed";

    /// <summary>Speaks in <paramref name="mode"/>: the text read aloud, or Mini-Omni's answer to it.</summary>
    public static TextToSpeechOptions WithMiniOmniSpeechMode(this TextToSpeechOptions options, MiniOmniSpeechMode mode)
    {
        ArgumentNullException.ThrowIfNull(options);
        (options.AdditionalProperties ??= [])[SpeechModeKey] = mode == MiniOmniSpeechMode.ReadAloud ? "read_aloud" : "answer";
        return options;
    }

    /// <summary>Encodes the speech with <paramref name="mode"/>.</summary>
    public static SpeechToTextOptions WithEncoderMode(this SpeechToTextOptions options, EncoderMode mode)
    {
        ArgumentNullException.ThrowIfNull(options);
        (options.AdditionalProperties ??= [])[MiniOmniChatOptions.EncoderModeKey] = mode == EncoderMode.Exact ? "exact" : "fast";
        return options;
    }

    internal static MiniOmniSpeechMode SpeechMode(AdditionalPropertiesDictionary? properties) =>
        MiniOmniChatOptions.Read(properties, SpeechModeKey, "read_aloud", MiniOmniSpeechMode.ReadAloud, "answer", MiniOmniSpeechMode.Answer) ?? MiniOmniSpeechMode.ReadAloud;

    internal static int MaxTokens(AdditionalPropertiesDictionary? properties) => Number(properties, MaxTokensKey) switch
    {
        null => 0,
        >= 1 and <= int.MaxValue and var max when max == Math.Floor(max) => (int)max,
        var other => throw new ArgumentOutOfRangeException(nameof(properties), other, $"The option {MaxTokensKey} must be a positive whole number."),
    };

    internal static SamplingOptions Sampling(AdditionalPropertiesDictionary? properties) => new SamplingOptions
    {
        Temperature = (float)(Number(properties, TemperatureKey) ?? 0),
        TopP = (float)(Number(properties, TopPKey) ?? 1),
        TopK = (int)(Number(properties, TopKKey) ?? 0),
        Seed = Number(properties, SeedKey) switch
        {
            null => null,
            >= int.MinValue and <= int.MaxValue and var seed => (int)seed,
            var seed => throw new ArgumentOutOfRangeException(nameof(properties), seed, $"The option {SeedKey} must fit in 32 bits."),
        },
    }.Validate();

    private static double? Number(AdditionalPropertiesDictionary? properties, string key)
    {
        if (properties?.TryGetValue(key, out object? value) is not true || value is null)
        {
            return null;
        }

        double? number = value switch
        {
            JsonElement { ValueKind: JsonValueKind.Number } json => json.GetDouble(),
            JsonElement { ValueKind: JsonValueKind.String } json => Parse(json.GetString()),
            string text => Parse(text),
            IConvertible convertible when value is not bool => convertible.ToDouble(CultureInfo.InvariantCulture),
            _ => null,
        };
        return number is { } n && double.IsFinite(n) ? n : throw new ArgumentException($"The option {key} is '{value}'; expected a number.", nameof(properties));

        static double? Parse(string? text) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) ? n : null;
    }
}
