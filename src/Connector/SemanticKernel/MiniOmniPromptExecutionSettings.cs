using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.AI;
using Microsoft.SemanticKernel;

namespace MiniOmni.SK;

/// <summary>
/// Semantic Kernel execution settings for Mini-Omni. The JSON names are the ones Semantic Kernel maps onto
/// Microsoft.Extensions.AI's <c>ChatOptions</c>, plus MiniOmni.SK's own (<see cref="MiniOmniChatOptions"/>,
/// <see cref="MiniOmniAudioOptions"/>), so the same settings work in prompt templates, YAML and code, for chat and for the
/// audio services (which honour the sampling, <see cref="MaxTokens"/>, <see cref="SpeechMode"/> and <see cref="FastEncoder"/>).
/// </summary>
[JsonNumberHandling(JsonNumberHandling.AllowReadingFromString)]
public sealed class MiniOmniPromptExecutionSettings : PromptExecutionSettings
{
    private static readonly JsonSerializerOptions ReadPermissive = new()
    {
        AllowTrailingCommas = true,
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    private float? _temperature;
    private float? _topP;
    private int? _topK;
    private int? _maxTokens;
    private long? _seed;
    private IList<string>? _stopSequences;
    private MiniOmniOutput? _output;
    private MiniOmniMode? _mode;
    private bool? _fastEncoder;
    private MiniOmniSpeechMode? _speechMode;

    /// <summary>Sampling temperature; 0 (default) is greedy, as released.</summary>
    [JsonPropertyName("temperature")]
    public float? Temperature { get => _temperature; set => Set(ref _temperature, value); }

    /// <summary>Nucleus sampling mass.</summary>
    [JsonPropertyName("top_p")]
    public float? TopP { get => _topP; set => Set(ref _topP, value); }

    /// <summary>Sample among this many most likely tokens.</summary>
    [JsonPropertyName("top_k")]
    public int? TopK { get => _topK; set => Set(ref _topK, value); }

    /// <summary>The most steps of the answer.</summary>
    [JsonPropertyName("max_tokens")]
    public int? MaxTokens { get => _maxTokens; set => Set(ref _maxTokens, value); }

    /// <summary>Seed of the sampler, for repeatable answers.</summary>
    [JsonPropertyName("seed")]
    public long? Seed { get => _seed; set => Set(ref _seed, value); }

    /// <summary>Text that ends the answer.</summary>
    [JsonPropertyName("stop_sequences")]
    public IList<string>? StopSequences { get => _stopSequences; set => Set(ref _stopSequences, value); }

    /// <summary>Text only, or text and speech; by default speech when the question is spoken.</summary>
    [JsonPropertyName(MiniOmniChatOptions.OutputKey)]
    [JsonConverter(typeof(JsonStringEnumConverter<MiniOmniOutput>))]
    public MiniOmniOutput? Output { get => _output; set => Set(ref _output, value); }

    /// <summary>Single or batch-parallel answers to spoken questions.</summary>
    [JsonPropertyName(MiniOmniChatOptions.ModeKey)]
    [JsonConverter(typeof(JsonStringEnumConverter<MiniOmniMode>))]
    public MiniOmniMode? Mode { get => _mode; set => Set(ref _mode, value); }

    /// <summary>What the text-to-audio service says: the text read aloud (default), or Mini-Omni's answer to it.</summary>
    [JsonPropertyName(MiniOmniAudioOptions.SpeechModeKey)]
    [JsonConverter(typeof(JsonStringEnumConverter<MiniOmniSpeechMode>))]
    public MiniOmniSpeechMode? SpeechMode { get => _speechMode; set => Set(ref _speechMode, value); }

    /// <summary>Encode only the frames the question covers (faster; differs from the release).</summary>
    [JsonIgnore]
    public bool? FastEncoder { get => _fastEncoder; set => Set(ref _fastEncoder, value); }

    [JsonPropertyName(MiniOmniChatOptions.EncoderModeKey)]
    [JsonInclude]
    internal string? EncoderModeName
    {
        get => _fastEncoder switch { true => "fast", false => "exact", null => null };
        set => FastEncoder = value is null ? null : string.Equals(value, "fast", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// <paramref name="executionSettings"/> as Mini-Omni settings: the same object, or a copy of another kind's values read
    /// by their JSON names (numbers also as strings), its function choice behavior kept.
    /// </summary>
    public static MiniOmniPromptExecutionSettings FromExecutionSettings(PromptExecutionSettings? executionSettings)
    {
        switch (executionSettings)
        {
            case null:
                return new MiniOmniPromptExecutionSettings();
            case MiniOmniPromptExecutionSettings settings:
                return settings;
        }

        var converted = JsonSerializer.Deserialize<MiniOmniPromptExecutionSettings>(JsonSerializer.Serialize(executionSettings), ReadPermissive)
            ?? throw new ArgumentException($"Invalid execution settings, cannot convert to {nameof(MiniOmniPromptExecutionSettings)}.", nameof(executionSettings));
        // The behavior's functions do not survive the JSON round trip.
        converted.FunctionChoiceBehavior = executionSettings.FunctionChoiceBehavior;
        return converted;
    }

    /// <summary>The audio services' options: sampling, budget, speech mode and encoder mode under MiniOmni.SK's keys.</summary>
    internal AdditionalPropertiesDictionary AudioProperties()
    {
        var properties = new AdditionalPropertiesDictionary();
        void Put(string key, object? value)
        {
            if (value is not null)
            {
                properties[key] = value;
            }
        }

        Put(MiniOmniAudioOptions.TemperatureKey, Temperature);
        Put(MiniOmniAudioOptions.TopPKey, TopP);
        Put(MiniOmniAudioOptions.TopKKey, TopK);
        Put(MiniOmniAudioOptions.SeedKey, Seed);
        Put(MiniOmniAudioOptions.MaxTokensKey, MaxTokens);
        Put(MiniOmniAudioOptions.SpeechModeKey, SpeechMode switch { MiniOmniSpeechMode.ReadAloud => "read_aloud", MiniOmniSpeechMode.Answer => "answer", _ => null });
        Put(MiniOmniChatOptions.EncoderModeKey, EncoderModeName);
        return properties;
    }

    /// <inheritdoc />
    public override PromptExecutionSettings Clone() => new MiniOmniPromptExecutionSettings
    {
        ModelId = ModelId,
        ServiceId = ServiceId,
        FunctionChoiceBehavior = FunctionChoiceBehavior,
        ExtensionData = ExtensionData is null ? null : new Dictionary<string, object>(ExtensionData),
        Temperature = Temperature,
        TopP = TopP,
        TopK = TopK,
        MaxTokens = MaxTokens,
        Seed = Seed,
        StopSequences = StopSequences is null ? null : [.. StopSequences],
        Output = Output,
        Mode = Mode,
        FastEncoder = FastEncoder,
        SpeechMode = SpeechMode,
    };

    private void Set<T>(ref T field, T value)
    {
        ThrowIfFrozen();
        field = value;
    }
}
