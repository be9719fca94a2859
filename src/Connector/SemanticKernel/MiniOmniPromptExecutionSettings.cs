using System.Text.Json.Serialization;
using Microsoft.SemanticKernel;

namespace MiniOmni.SK;

/// <summary>
/// Semantic Kernel execution settings for Mini-Omni. The JSON names are the ones Semantic Kernel maps onto
/// Microsoft.Extensions.AI's <c>ChatOptions</c>, plus MiniOmni.SK's own (<see cref="MiniOmniChatOptions"/>), so the
/// same settings work in prompt templates, YAML and code.
/// </summary>
public sealed class MiniOmniPromptExecutionSettings : PromptExecutionSettings
{
    private float? _temperature;
    private float? _topP;
    private int? _topK;
    private int? _maxTokens;
    private long? _seed;
    private IList<string>? _stopSequences;
    private MiniOmniOutput? _output;
    private MiniOmniMode? _mode;
    private bool? _fastEncoder;

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

    /// <summary>These settings as Mini-Omni settings: the same object, or a copy of a base instance's values.</summary>
    public static MiniOmniPromptExecutionSettings From(PromptExecutionSettings? settings) => settings switch
    {
        null => new MiniOmniPromptExecutionSettings(),
        MiniOmniPromptExecutionSettings miniOmni => miniOmni,
        _ => System.Text.Json.JsonSerializer.Deserialize<MiniOmniPromptExecutionSettings>(System.Text.Json.JsonSerializer.Serialize(settings))!,
    };

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
    };

    private void Set<T>(ref T field, T value)
    {
        ThrowIfFrozen();
        field = value;
    }
}
