using System.Text.Json.Nodes;
using MiniOmni.SK.ModelFiles.Checkpoints;
using MiniOmni.SK.ModelFiles.Conversion;
using static MiniOmni.SK.ModelFiles.Tests.Checkpoints.TestCheckpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Fuzzing;

/// <summary>
/// The three original releases in their original formats, at the fixture's tiny shapes but with a 1024-row vocabulary
/// and a 400-token tokenizer: a bf16 litgpt <c>lit_model.pth</c> with its <c>model_config.yaml</c> and
/// <c>tokenizer.json</c>, an fp16 openai Whisper <c>.pt</c> and the same encoder as a Hugging Face safetensors directory,
/// and an fp32 SNAC <c>pytorch_model.bin</c> with weight-normed convolutions. Small enough to corrupt and convert
/// hundreds of times.
/// </summary>
public sealed class SmallSources : IDisposable
{
    private const int Rows = 1024;
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public SmallSources()
    {
        string root = _directory.Path;
        Checkpoint = Path.Combine(root, "mini-omni");
        WhisperPt = Path.Combine(root, "whisper", "small.pt");
        WhisperHf = Path.Combine(root, "whisper-hf");
        Snac = Path.Combine(root, "snac");
        foreach (string directory in new[] { Checkpoint, Path.GetDirectoryName(WhisperPt)!, WhisperHf, Snac })
        {
            Directory.CreateDirectory(directory);
        }

        var weights = new SyntheticWeights(5);
        var tiny = ModelPresets.Tiny;
        var backbone = tiny.Backbone;

        // litgpt's state dict, bf16 as the release.
        var litgpt = new List<(string, long[])> { ("transformer.wte.weight", [Rows, backbone.EmbeddingLength]), ("lm_head.weight", [Rows, backbone.EmbeddingLength]), ("transformer.ln_f.weight", [backbone.EmbeddingLength]) };
        for (int layer = 0; layer < backbone.LayerCount; layer++)
        {
            string block = $"transformer.h.{layer}.";
            long e = backbone.EmbeddingLength, ff = backbone.FeedForwardLength;
            litgpt.AddRange([
                (block + "norm_1.weight", [e]), (block + "attn.attn.weight", [backbone.FusedQkvRows, e]), (block + "attn.attn.bias", [backbone.FusedQkvRows]),
                (block + "attn.proj.weight", [e, e]), (block + "norm_2.weight", [e]), (block + "mlp.fc_1.weight", [ff, e]),
                (block + "mlp.fc_2.weight", [ff, e]), (block + "mlp.proj.weight", [e, ff])]);
        }

        litgpt.AddRange(AudioTensorLayout.Adapter("llamamlp", tiny.Whisper.Width, tiny.AdapterIntermediate, backbone.EmbeddingLength).Select(s => (s.SourceName, s.Shape)));
        WriteTorch(Path.Combine(Checkpoint, "lit_model.pth"), litgpt, "BFloat16Storage", weights);
        string config = File.ReadAllText(Path.Combine(Fixture.Checkpoint, "model_config.yaml"))
            .Replace("padded_vocab_size: 181120", $"padded_vocab_size: {Rows}", StringComparison.Ordinal)
            .Replace("vocab_size: 181120", $"vocab_size: {Rows}", StringComparison.Ordinal)
            .Replace("text_vocab_size: 152000", "text_vocab_size: 512", StringComparison.Ordinal)
            .Replace("audio_vocab_size: 4160", "audio_vocab_size: 72", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(Checkpoint, "model_config.yaml"), config);
        File.WriteAllText(Path.Combine(Checkpoint, "tokenizer.json"), SmallTokenizer());

        // Whisper: openai's .pt (dims beside the state dict, fp16) and Hugging Face's safetensors directory (f32).
        var whisper = AudioTensorLayout.Whisper(tiny.Whisper).Select(s => (s.SourceName, s.Shape)).ToList();
        var dims = new Dictionary<string, int> { ["n_mels"] = 80, ["n_audio_ctx"] = 1500, ["n_audio_state"] = tiny.Whisper.Width, ["n_audio_head"] = tiny.Whisper.HeadCount, ["n_audio_layer"] = tiny.Whisper.LayerCount };
        WriteTorch(WhisperPt, whisper, "HalfStorage", weights, dims);
        WriteSafetensors(Path.Combine(WhisperHf, "model.safetensors"), whisper.Select(t => (WhisperCheckpoint.ToHuggingFaceName(t.SourceName), "F32", t.Item2, Floats(weights.Generate(t.SourceName, t.Item2)))));
        File.WriteAllText(Path.Combine(WhisperHf, "config.json"), $$"""{"num_mel_bins": 80, "max_source_positions": 1500, "d_model": {{tiny.Whisper.Width}}, "encoder_attention_heads": {{tiny.Whisper.HeadCount}}, "encoder_layers": {{tiny.Whisper.LayerCount}}, "decoder_layers": 2}""");

        // SNAC: the fixture's config, convolutions stored weight-normed (weight_g, weight_v) as the hub's file.
        File.Copy(Path.Combine(Fixture.Snac, "config.json"), Path.Combine(Snac, "config.json"));
        var snac = new List<(string, long[])>();
        foreach (var slot in AudioTensorLayout.Snac(tiny.Snac))
        {
            if (slot.Shape.Length == 3 && slot.SourceName.EndsWith(".weight", StringComparison.Ordinal))
            {
                string module = slot.SourceName[..^".weight".Length];
                snac.Add((module + ".weight_g", [slot.Shape[0], 1, 1]));
                snac.Add((module + ".weight_v", slot.Shape));
            }
            else
            {
                snac.Add((slot.SourceName, slot.Shape));
            }
        }

        WriteTorch(Path.Combine(Snac, "pytorch_model.bin"), snac, "FloatStorage", weights);
    }

    public string Checkpoint { get; }

    public string WhisperPt { get; }

    public string WhisperHf { get; }

    public string Snac { get; }

    public ConversionSources Sources => new(Checkpoint, WhisperPt, Snac);

    public void Dispose() => _directory.Dispose();

    private static void WriteTorch(string path, List<(string Name, long[] Shape)> tensors, string storage, SyntheticWeights weights, Dictionary<string, int>? dims = null)
    {
        var pickle = new PickleBuilder().Op((byte)'}');
        if (dims is not null)
        {
            pickle.String("dims").Op((byte)'}');
            foreach (var (name, value) in dims)
            {
                pickle.String(name).Int(value).Op((byte)'s');
            }

            pickle.Op((byte)'s').String("model_state_dict").Op((byte)'}');
        }

        var storages = new Dictionary<string, byte[]>();
        foreach (var (name, shape) in tensors)
        {
            string key = storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            int[] size = [.. shape.Select(d => (int)d)];
            int[] stride = [.. size.Select((_, d) => size.Skip(d + 1).Aggregate(1, (a, b) => a * b))];
            pickle.Tensor(name, storage, key, size.Aggregate(1, (a, b) => a * b), 0, size, stride);
            float[] values = weights.Generate(name, shape);
            storages[key] = storage switch
            {
                "FloatStorage" => Floats(values),
                "HalfStorage" => [.. values.SelectMany(v => BitConverter.GetBytes((Half)v))],
                _ => [.. values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(v) >> 16)))],
            };
        }

        if (dims is not null)
        {
            pickle.Op((byte)'s');
        }

        WriteTorchZip(Path.GetDirectoryName(path)!, Path.GetFileName(path), pickle.Op((byte)'.').ToArray(), storages);
    }

    // The fixture's tokenizer cut to its first 400 ids, the merges among them, and Qwen2's three added tokens after them.
    private static string SmallTokenizer()
    {
        var root = JsonNode.Parse(File.ReadAllText(Fixture.Tokenizer))!.AsObject();
        var model = root["model"]!.AsObject();
        var vocab = model["vocab"]!.AsObject().Where(p => p.Value!.GetValue<int>() < 400).ToDictionary(p => p.Key, p => p.Value!.GetValue<int>());
        var merges = model["merges"]!.AsArray().Select(m => m!.AsArray().Select(p => p!.GetValue<string>()).ToArray())
            .Where(m => vocab.ContainsKey(m[0]) && vocab.ContainsKey(m[1]) && vocab.ContainsKey(m[0] + m[1])).Take(200).ToList();
        model["vocab"] = new JsonObject(vocab.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value)));
        model["merges"] = new JsonArray([.. merges.Select(m => (JsonNode?)new JsonArray(m[0], m[1]))]);
        root["added_tokens"] = new JsonArray([.. new[] { "<|endoftext|>", "<|im_start|>", "<|im_end|>" }.Select((content, i) => (JsonNode?)new JsonObject { ["id"] = 400 + i, ["content"] = content, ["special"] = true })]);
        return root.ToJsonString();
    }
}
