using System.Text.RegularExpressions;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// Whisper's encoder weights under openai's names (<c>encoder.blocks.0.attn.query.weight</c>), read from openai's
/// <c>small.pt</c> or from a Hugging Face <c>openai/whisper-small</c> directory (whose names are mapped).
/// </summary>
public sealed partial class WhisperCheckpoint : IDisposable
{
    private readonly ITensorCheckpoint _source;
    private readonly Func<string, string> _toSourceName;

    private WhisperCheckpoint(ITensorCheckpoint source, WhisperDims dims, Func<string, string> toSourceName)
    {
        _source = source;
        Dims = dims;
        _toSourceName = toSourceName;
    }

    /// <summary>The encoder's dimensions.</summary>
    public WhisperDims Dims { get; }

    /// <summary>The file the tensors come from.</summary>
    public string Path => _source.Path;

    /// <summary>Opens an openai <c>.pt</c> file or a Hugging Face directory (<c>model.safetensors</c> + <c>config.json</c>).</summary>
    public static WhisperCheckpoint Open(string fileOrDirectory)
    {
        if (Directory.Exists(fileOrDirectory))
        {
            string config = System.IO.Path.Combine(fileOrDirectory, "config.json");
            string weights = System.IO.Path.Combine(fileOrDirectory, "model.safetensors");
            if (!File.Exists(weights) || !File.Exists(config))
            {
                throw new ModelFileException(fileOrDirectory, "no model.safetensors and config.json; is this a Hugging Face openai/whisper-* directory? (or pass openai's small.pt file)");
            }

            var dims = WhisperDims.FromHuggingFace(config);
            return new WhisperCheckpoint(SafetensorsCheckpoint.Open(weights), dims, ToHuggingFaceName);
        }

        var checkpoint = TorchCheckpoint.Open(fileOrDirectory);
        try
        {
            return new WhisperCheckpoint(checkpoint, WhisperDims.FromOpenAi(fileOrDirectory, checkpoint.Metadata), name => name);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>The tensor with openai name <paramref name="openAiName"/>, checked to have <paramref name="expectedShape"/>.</summary>
    public CheckpointTensor Get(string openAiName, params long[] expectedShape) => _source.Get(_toSourceName(openAiName), expectedShape);

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();

    /// <summary>Maps an openai encoder name to the Hugging Face transformers name of the same weight.</summary>
    internal static string ToHuggingFaceName(string openAiName)
    {
        if (openAiName == "encoder.positional_embedding")
        {
            return "model.encoder.embed_positions.weight";
        }

        var block = BlockName().Match(openAiName);
        if (block.Success)
        {
            string part = block.Groups["part"].Value switch
            {
                "attn.query" => "self_attn.q_proj",
                "attn.key" => "self_attn.k_proj",
                "attn.value" => "self_attn.v_proj",
                "attn.out" => "self_attn.out_proj",
                "attn_ln" => "self_attn_layer_norm",
                "mlp.0" => "fc1",
                "mlp.2" => "fc2",
                "mlp_ln" => "final_layer_norm",
                var other => other,
            };
            return $"model.encoder.layers.{block.Groups["layer"].Value}.{part}.{block.Groups["kind"].Value}";
        }

        return "model." + openAiName.Replace("encoder.ln_post.", "encoder.layer_norm.", StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^encoder\.blocks\.(?<layer>\d+)\.(?<part>.+)\.(?<kind>weight|bias)$")]
    private static partial Regex BlockName();
}
