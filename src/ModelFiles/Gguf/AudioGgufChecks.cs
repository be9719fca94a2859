using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.ModelFiles.Gguf;

/// <summary>What a checked audio file states: its description, the adapter's hidden width and the input sample rate.</summary>
public sealed record CheckedAudioFile(AudioFileDescription Description, int AdapterIntermediateSize, int InputSampleRate);

/// <summary>
/// Checks MiniOmni.SK's audio GGUF before any of it reaches ggml: every hyper-parameter and special id in range and
/// consistent with the others, and every tensor the encoder, adapter and codec read present with the shape the
/// hyper-parameters give it and a type the graphs use. ggml asserts (ending the process) where a shape is wrong, and a
/// zero or negative size divides by zero or allocates nonsense; each of those is a <see cref="ModelFileException"/> here.
/// </summary>
public static class AudioGgufChecks
{
    /// <summary>The audio layers of Mini-Omni's delay pattern: SNAC's three codebooks at one, two and four codes per frame.</summary>
    public const int AudioLayerCount = 7;

    /// <summary>Special ids Mini-Omni reserves at the end of each vocabulary.</summary>
    public const int ReservedSpecialIds = 64;

    /// <summary>Whisper's input sample rate, the one MiniOmni.SK's audio front end resamples to.</summary>
    public const int InputSampleRate = 16000;

    /// <summary>Checks <paramref name="file"/> and returns what it states.</summary>
    public static CheckedAudioFile Check(GgufFile file)
    {
        string architecture = file.GetString(MiniOmniGgufKeys.Architecture);
        if (architecture != MiniOmniGgufKeys.AudioArchitecture)
        {
            throw new ModelFileException(file.Path, $"architecture '{architecture}' is not MiniOmni.SK's audio file ('{MiniOmniGgufKeys.AudioArchitecture}').", MiniOmniGgufKeys.Architecture);
        }

        int Int(string key, long min, long max) => ModelLimits.InRange(file.GetInteger(key), min, max, file.Path, key);

        int padded = Int(MiniOmniGgufKeys.PaddedVocabularySize, 1, ModelLimits.MaxVocabulary);
        int text = Int(MiniOmniGgufKeys.TextVocabularySize, ReservedSpecialIds + 1, ModelLimits.MaxVocabulary);
        int audio = Int(MiniOmniGgufKeys.AudioVocabularySize, ReservedSpecialIds + 1, ModelLimits.MaxVocabulary);
        int layers = Int(MiniOmniGgufKeys.AudioLayerCount, AudioLayerCount, AudioLayerCount);
        if ((long)text + (long)layers * audio > padded)
        {
            throw new ModelFileException(file.Path, $"{padded} rows cannot hold {text} text ids and {layers} audio layers of {audio}.", MiniOmniGgufKeys.PaddedVocabularySize);
        }

        int embedding = Int(MiniOmniGgufKeys.EmbeddingLength, 1, ModelLimits.MaxWidth);
        int TextId(string key) => Int(key, 0, text - 1);
        int AudioId(string key) => Int(key, 0, audio - 1);
        var tokens = new SpecialTokens(
            TextId(MiniOmniGgufKeys.TokenEndOfText), TextId(MiniOmniGgufKeys.TokenPadText), TextId(MiniOmniGgufKeys.TokenInputText),
            TextId(MiniOmniGgufKeys.TokenAnswerText), TextId(MiniOmniGgufKeys.TokenAsr),
            AudioId(MiniOmniGgufKeys.TokenEndOfAudio), AudioId(MiniOmniGgufKeys.TokenPadAudio), AudioId(MiniOmniGgufKeys.TokenInputAudio),
            AudioId(MiniOmniGgufKeys.TokenAnswerAudio));

        var whisper = new WhisperShape(
            Int(MiniOmniGgufKeys.WhisperMelBins, ModelLimits.WhisperMelBins, ModelLimits.WhisperMelBins),
            Int(MiniOmniGgufKeys.WhisperContext, ModelLimits.WhisperContext, ModelLimits.WhisperContext),
            Int(MiniOmniGgufKeys.WhisperWidth, 1, ModelLimits.MaxWidth),
            Int(MiniOmniGgufKeys.WhisperHeads, 1, ModelLimits.MaxHeads),
            Int(MiniOmniGgufKeys.WhisperLayers, 1, ModelLimits.MaxWhisperLayers));
        if (whisper.Width % whisper.HeadCount != 0)
        {
            throw new ModelFileException(file.Path, $"Whisper width {whisper.Width} does not split into {whisper.HeadCount} heads.", MiniOmniGgufKeys.WhisperHeads);
        }

        int inputRate = Int(MiniOmniGgufKeys.WhisperSampleRate, InputSampleRate, InputSampleRate);
        string adapter = file.GetString(MiniOmniGgufKeys.AdapterType);
        if (adapter is not ("llamamlp" or "mlp"))
        {
            throw new ModelFileException(file.Path, $"'{adapter}' is not an adapter Mini-Omni has (llamamlp or mlp).", MiniOmniGgufKeys.AdapterType);
        }

        var snac = ReadSnac(file, Int);
        if (audio - ReservedSpecialIds > snac.CodebookSize)
        {
            throw new ModelFileException(file.Path, $"{audio - ReservedSpecialIds} audio codes per layer, more than the codec's {snac.CodebookSize} can decode.", MiniOmniGgufKeys.AudioVocabularySize);
        }

        string fileType = file.Metadata.TryGetValue(MiniOmniGgufKeys.FileType, out object? type) ? type as string ?? "" : "f32";
        if (!ModelFileTypes.Names.Contains(fileType))
        {
            throw new ModelFileException(file.Path, $"'{fileType}' is not a model type ({string.Join(", ", ModelFileTypes.Names)}).", MiniOmniGgufKeys.FileType);
        }

        string name = file.Metadata.TryGetValue(MiniOmniGgufKeys.Name, out object? named) && named is string modelName ? modelName : "mini-omni";
        var description = new AudioFileDescription(name, ModelFileTypes.Parse(fileType), padded, text, audio, layers, embedding, tokens, whisper, adapter, snac);
        int intermediate = AdapterIntermediate(file, description);
        CheckTensors(file, description, intermediate);
        return new CheckedAudioFile(description, intermediate, inputRate);
    }

    private static SnacShape ReadSnac(GgufFile file, Func<string, long, long, int> integer)
    {
        int[] Ints(string key, int maxCount, int min, int max)
        {
            int[] values = file.Metadata.TryGetValue(key, out object? raw) && raw is int[] array
                ? array
                : throw new ModelFileException(file.Path, "expected an array of i32.", key);
            if (values.Length == 0 || values.Length > maxCount)
            {
                throw new ModelFileException(file.Path, $"{values.Length} values; 1 to {maxCount} expected.", key);
            }

            foreach (int value in values)
            {
                ModelLimits.InRange(value, min, max, file.Path, key);
            }

            return values;
        }

        int[] rates = Ints(MiniOmniGgufKeys.SnacDecoderRates, ModelLimits.MaxSnacBlocks, 1, ModelLimits.MaxSnacRate);
        int decoderDim = integer(MiniOmniGgufKeys.SnacDecoderDim, 1, ModelLimits.MaxWidth);
        if (decoderDim % (1 << rates.Length) != 0)
        {
            throw new ModelFileException(file.Path, $"{decoderDim} channels cannot be halved by each of {rates.Length} upsampling blocks.", MiniOmniGgufKeys.SnacDecoderDim);
        }

        int[] strides = Ints(MiniOmniGgufKeys.SnacStrides, ModelLimits.SnacStrides.Count + 1, 1, ModelLimits.MaxSnacRate);
        if (!strides.SequenceEqual(ModelLimits.SnacStrides))
        {
            throw new ModelFileException(file.Path, $"[{string.Join(", ", strides)}] is not SNAC 24 kHz's [{string.Join(", ", ModelLimits.SnacStrides)}], which Mini-Omni's seven audio layers are made of.", MiniOmniGgufKeys.SnacStrides);
        }

        bool depthwise = file.GetBool(MiniOmniGgufKeys.SnacDepthwise, false);
        if (!depthwise)
        {
            throw new ModelFileException(file.Path, "only depthwise SNAC decoders (as hubertsiuzdak/snac_24khz) are supported.", MiniOmniGgufKeys.SnacDepthwise);
        }

        return new SnacShape(
            integer(MiniOmniGgufKeys.SnacSampleRate, 1, ModelLimits.MaxSampleRate),
            integer(MiniOmniGgufKeys.SnacLatentDim, 1, ModelLimits.MaxWidth),
            decoderDim,
            rates,
            integer(MiniOmniGgufKeys.SnacCodebookSize, 1, ModelLimits.MaxCodebookSize),
            integer(MiniOmniGgufKeys.SnacCodebookDim, 1, ModelLimits.MaxWidth),
            strides,
            file.GetBool(MiniOmniGgufKeys.SnacNoise, false),
            depthwise);
    }

    // The adapter's hidden width is not in the metadata: llamamlp's first matrix states it.
    private static int AdapterIntermediate(GgufFile file, AudioFileDescription description)
    {
        if (description.AdapterType != "llamamlp")
        {
            return description.EmbeddingLength;
        }

        const string name = "whisper_adapter.fc_1.weight";
        var tensor = file.GetTensor(name);
        return tensor.Dims.Count == 2
            ? ModelLimits.InRange(tensor.Dims[1], 1, ModelLimits.MaxFeedForward, file.Path, name)
            : throw new ModelFileException(file.Path, $"dims [{string.Join(", ", tensor.Dims)}] are not a matrix.", name);
    }

    // Exactly the tensors the layout derives from the hyper-parameters, each in the shape it gives and the type
    // AudioGgufBuilder stores it as: linear weights of the encoder and adapter F32, F16 or Q8_0, everything else F32.
    private static void CheckTensors(GgufFile file, AudioFileDescription description, int intermediate)
    {
        var expected = AudioTensorLayout.All(description, intermediate).ToDictionary(slot => slot.GgufName, slot => slot.Slot.Shape, StringComparer.Ordinal);
        foreach (var tensor in file.Tensors.Values)
        {
            if (!expected.ContainsKey(tensor.Name))
            {
                throw new ModelFileException(file.Path, "not a tensor of the encoder, adapter or codec these hyper-parameters describe.", tensor.Name);
            }
        }

        foreach (var (name, torchShape) in expected)
        {
            var tensor = file.GetTensor(name);
            long[] dims = [.. torchShape.Reverse()];
            if (!GgufFile.SameShape(tensor.Dims, dims))
            {
                throw new ModelFileException(file.Path, $"dims [{string.Join(", ", tensor.Dims)}]; the hyper-parameters make it [{string.Join(", ", dims)}].", name);
            }

            bool linear = torchShape.Length == 2 && name.EndsWith(".weight", StringComparison.Ordinal) && !name.StartsWith(MiniOmniGgufKeys.SnacTensorPrefix, StringComparison.Ordinal);
            if (linear ? tensor.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0) : tensor.Type != GgmlType.F32)
            {
                throw new ModelFileException(file.Path, $"{tensor.Type} is not a type this tensor can have ({(linear ? "F32, F16 or Q8_0" : "F32")}).", name);
            }
        }
    }
}
