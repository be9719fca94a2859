using System.Numerics.Tensors;
using System.Text.Json;
using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>One model to compare: its directory, and how its text head is held (null: as the engine holds it for its type).</summary>
internal sealed record AccuracyModel(string Directory, GgmlType? TextHeadType)
{
    /// <summary>Parses <c>DIR</c> or <c>DIR:TYPE</c> (TYPE q8_0 or q4_0: the text head's type).</summary>
    public static AccuracyModel Parse(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon > 1 && text[(colon + 1)..] is "q8_0" or "q4_0" or "f32" or "f16")
        {
            return new(text[..colon], Enum.Parse<GgmlType>(text[(colon + 1)..], ignoreCase: true));
        }

        return new(text, null);
    }

    /// <summary>A short name: the directory's, plus the text head's type when it is set.</summary>
    public string Name => Path.GetFileName(Path.TrimEndingDirectorySeparator(Directory)) + (TextHeadType is { } type ? $" (text head {type})" : "");
}

/// <summary>What a model's logits did against the reference's, per head, over every compared step.</summary>
internal sealed class HeadAccuracy
{
    private double _squaredError, _squaredSpread;

    /// <summary>Steps compared.</summary>
    public int Steps { get; private set; }

    /// <summary>The largest |logit - reference logit|.</summary>
    public double MaxError { get; private set; }

    /// <summary>Steps whose most likely token is the reference's.</summary>
    public int Top1Agreements { get; private set; }

    /// <summary>Root mean square error over the logits' own spread (RMS of the reference logits about their mean).</summary>
    public double RelativeRmsError => _squaredSpread == 0 ? 0 : Math.Sqrt(_squaredError / _squaredSpread);

    /// <summary>The share of steps with the reference's most likely token.</summary>
    public double Top1Agreement => Steps == 0 ? double.NaN : Top1Agreements / (double)Steps;

    /// <summary>Adds one step of one head.</summary>
    public void Add(ReadOnlySpan<float> reference, ReadOnlySpan<float> logits)
    {
        float mean = TensorPrimitives.Sum(reference) / reference.Length;
        double error = 0, spread = 0, max = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            double d = logits[i] - reference[i];
            error += d * d;
            spread += (reference[i] - mean) * (reference[i] - mean);
            max = Math.Max(max, Math.Abs(d));
        }

        _squaredError += error;
        _squaredSpread += spread;
        MaxError = Math.Max(MaxError, max);
        Top1Agreements += TensorPrimitives.IndexOfMax(reference) == TensorPrimitives.IndexOfMax(logits) ? 1 : 0;
        Steps++;
    }
}

/// <summary>
/// Each head of quantized models against the f32 model, teacher-forced: every model is fed the same tokens (the
/// fixture's reference answers, or a long answer the f32 model generates greedily), and at every step each head's
/// logits are compared with the f32 model's: the largest error, the RMS error over the logits' spread, and how often
/// the most likely token is the same. The cache is f32 for every model, so the figures are the weights' alone.
/// </summary>
internal static class TeacherForcedAccuracy
{
    /// <summary>A prompt and the tokens fed back after it; logits are compared at the prompt's last position and after each fed step.</summary>
    private sealed record ForcedAnswer(string Name, int[][] Prompt, float[] Features, IReadOnlyList<int[]> Steps, bool Speaking);

    /// <summary>Compares <paramref name="models"/> with <paramref name="reference"/> over the fixture's tasks (from its manifest) or, without one, a long synthetic answer.</summary>
    public static Dictionary<string, Dictionary<string, HeadAccuracy>> Compare(string reference, IReadOnlyList<AccuracyModel> models, string? fixture, int answerSteps)
    {
        var referenceModel = new ModelDirectory(reference).EnsureComplete();
        var vocabulary = Vocabulary(referenceModel);
        List<ForcedAnswer> answers;
        using (var session = new ForcedSession(referenceModel, vocabulary, null))
        {
            answers = fixture is null ? [session.Generate(answerSteps)] : FixtureAnswers(fixture, vocabulary);
        }

        // The reference and each model in step, so that no answer's logits need to be kept.
        var results = new Dictionary<string, Dictionary<string, HeadAccuracy>>();
        foreach (var model in models)
        {
            var heads = HeadNames(vocabulary).ToDictionary(name => name, _ => new HeadAccuracy());
            using var referenceSession = new ForcedSession(referenceModel, vocabulary, null);
            using var session = new ForcedSession(new ModelDirectory(model.Directory).EnsureComplete(), vocabulary, model.TextHeadType);
            foreach (var answer in answers)
            {
                foreach (var (expected, logits) in referenceSession.Run(answer).Zip(session.Run(answer)))
                {
                    foreach (var (name, range) in HeadRanges(vocabulary, answer.Speaking))
                    {
                        heads[name].Add(expected.AsSpan()[range], logits.AsSpan()[range]);
                    }
                }
            }

            results[model.Name] = heads;
        }

        return results;
    }

    private static MiniOmniVocabulary Vocabulary(ModelDirectory model)
    {
        using var audio = GgufFile.Open(model.AudioPath);
        return MiniOmniVocabulary.From(AudioModelParameters.Read(audio));
    }

    /// <summary>The heads by name: text, then audio 0 to 6.</summary>
    public static IEnumerable<string> HeadNames(MiniOmniVocabulary vocabulary) =>
        ["text", .. Enumerable.Range(0, vocabulary.AudioLayerCount).Select(layer => $"audio {layer}")];

    private static IEnumerable<(string Name, Range Rows)> HeadRanges(MiniOmniVocabulary vocabulary, bool speaking) =>
        [("text", vocabulary.TextHead), .. (speaking ? Enumerable.Range(0, vocabulary.AudioLayerCount).Select(layer => ($"audio {layer}", vocabulary.AudioHead(layer))) : [])];

    // The fixture's tasks as the reference ran them: each row of each task, its prompt and the tokens it generated fed back.
    private static List<ForcedAnswer> FixtureAnswers(string fixture, MiniOmniVocabulary vocabulary)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture, "expected", "manifest.json")));
        byte[] featureBytes = File.ReadAllBytes(Path.Combine(fixture, "expected", "adapter_out.f32"));
        var features = new float[featureBytes.Length / 4];
        Buffer.BlockCopy(featureBytes, 0, features, 0, featureBytes.Length);
        int[] Ids(JsonElement ids) => [.. ids.EnumerateArray().Select(id => id.GetInt32())];
        var answers = new List<ForcedAnswer>();
        foreach (var task in manifest.RootElement.GetProperty("tasks").EnumerateObject())
        {
            bool batch = task.Name == "A1A2_BATCH";
            bool speaking = task.Name.StartsWith("A1A2", StringComparison.Ordinal) || task.Name.StartsWith("T1A2", StringComparison.Ordinal);
            var inputs = task.Value.GetProperty("input_ids");
            var output = task.Value.GetProperty("output");
            int[][] outputs = speaking
                ? [.. output.EnumerateArray().Select(Ids)]
                : [.. Enumerable.Repeat(Array.Empty<int>(), vocabulary.AudioLayerCount), Ids(output)];
            int steps = task.Value.GetProperty("steps").GetArrayLength();
            for (int row = 0; row < (batch ? 2 : 1); row++)
            {
                int[][] prompt = batch ? [.. inputs.EnumerateArray().Select(stream => Ids(stream[row]))] : [.. inputs.EnumerateArray().Select(Ids)];
                bool rowSpeaks = speaking && row == 0;
                var fed = new List<int[]>();
                for (int step = 1; step < steps; step++)
                {
                    var input = new int[vocabulary.AudioLayerCount + 1];
                    for (int layer = 0; layer < vocabulary.AudioLayerCount; layer++)
                    {
                        input[layer] = vocabulary.AudioRow(layer, rowSpeaks ? outputs[layer][step - 1] : vocabulary.Tokens.PadAudio);
                    }

                    input[^1] = outputs[^1][step - 1];
                    fed.Add(input);
                }

                answers.Add(new ForcedAnswer(batch ? $"{task.Name} row {row}" : task.Name, prompt, task.Name.StartsWith('A') ? features : [], fed, rowSpeaks || speaking && !batch));
            }
        }

        return answers;
    }

    /// <summary>One model's backbone and heads, decoding one forced answer at a time in sequence 0.</summary>
    private sealed class ForcedSession : IDisposable
    {
        private readonly GgufFile _vocabularyFile;
        private readonly Backbone _backbone;
        private readonly EmbeddingMix _mix;
        private readonly MiniOmniVocabulary _vocabulary;
        private readonly TextTokenizer _tokenizer;

        public ForcedSession(ModelDirectory model, MiniOmniVocabulary vocabulary, GgmlType? textHeadType)
        {
            _vocabulary = vocabulary;
            _vocabularyFile = GgufFile.Open(model.VocabularyPath);
            _tokenizer = TextTokenizer.Load(model.VocabularyPath);
            _mix = new EmbeddingMix(_vocabularyFile);
            GgmlType? type = textHeadType;
            using (var audio = GgufFile.Open(model.AudioPath))
            {
                type ??= audio.Metadata.TryGetValue(MiniOmniGgufKeys.FileType, out var name) && name is string text && ModelFileTypes.Names.Contains(text) ? ModelFileTypes.Parse(text).TextHeadType() : null;
            }

            var heads = new OutputHeads(_vocabularyFile, vocabulary, new GgmlComputeOptions(), 1, textHeadType: type);
            _backbone = Backbone.Load(model.BackbonePath, heads, new BackboneOptions { ContextSize = 4096, MaxSequences = 1, CacheType = GGMLType.GGML_TYPE_F32, StepDecodePolicy = StepDecodePolicy.Together });
        }

        // A long spoken answer to a text question, each step the f32 model's most likely tokens.
        public ForcedAnswer Generate(int steps)
        {
            var prompt = new PromptBuilder(_vocabulary).ForText(MiniOmniTask.T1A2, _tokenizer.Tokenize("What is your name, and what can you tell me about the weather today?"));
            var fed = new List<int[]>();
            var answer = new ForcedAnswer("synthetic", prompt.Streams, [], fed, Speaking: true);
            foreach (var _ in Run(answer, logits =>
            {
                if (fed.Count >= steps - 1)
                {
                    return null;
                }

                var input = new int[_vocabulary.AudioLayerCount + 1];
                for (int layer = 0; layer < _vocabulary.AudioLayerCount; layer++)
                {
                    input[layer] = _vocabulary.AudioRow(layer, TensorPrimitives.IndexOfMax(logits.AsSpan()[_vocabulary.AudioHead(layer)]));
                }

                input[^1] = TensorPrimitives.IndexOfMax(logits.AsSpan()[_vocabulary.TextHead]);
                fed.Add(input);
                return input;
            }))
            {
            }

            return answer;
        }

        /// <summary>The logits of every compared step of the answer (its prompt's last position, then each fed step), in one reused array.</summary>
        public IEnumerable<float[]> Run(ForcedAnswer answer)
        {
            int next = 0;
            return Run(answer, _ => next < answer.Steps.Count ? answer.Steps[next++] : null);
        }

        // Decodes the prompt, then yields each step's logits (in one reused array, all heads' rows) and feeds the input
        // `next` gives for them, until it gives none.
        private IEnumerable<float[]> Run(ForcedAnswer answer, Func<float[], int[]?> next)
        {
            var heads = answer.Speaking ? OutputHeadSet.TextAndAudio : OutputHeadSet.Text;
            _backbone.RemoveSequence((LLamaSeqId)0);
            float[] prompt = _mix.MixPrompt(answer.Prompt, answer.Features, firstAudioPosition: 1);
            int width = _mix.Width, length = answer.Prompt[0].Length;
            var batch = _backbone.CreateBatch();
            for (int start = 0; start < length; start += 256)
            {
                batch.Clear();
                for (int position = start; position < Math.Min(length, start + 256); position++)
                {
                    batch.Add(prompt.AsSpan(position * width, width), (LLamaPos)position, (LLamaSeqId)0, position == length - 1 ? heads : OutputHeadSet.None);
                }

                _backbone.Decode(batch);
            }

            var embedding = new float[width];
            var whole = new float[_vocabulary.RowCount];
            for (int position = length; ; position++)
            {
                var logits = _backbone.Logits(batch.EmbeddingsCount - 1);
                logits[_vocabulary.TextHead].CopyTo(whole.AsSpan(_vocabulary.TextHead));
                if (answer.Speaking)
                {
                    logits[_vocabulary.AudioRow(0, 0).._vocabulary.RowCount].CopyTo(whole.AsSpan(_vocabulary.AudioRow(0, 0)));
                }

                yield return whole;
                if (next(whole) is not { } input)
                {
                    yield break;
                }

                _mix.Mix(input, default, embedding);
                batch.Clear();
                batch.Add(embedding, (LLamaPos)position, (LLamaSeqId)0, heads);
                _backbone.Decode(batch);
            }
        }

        public void Dispose()
        {
            _backbone.Dispose();
            _tokenizer.Dispose();
            _vocabularyFile.Dispose();
        }
    }
}
