using LLama.Native;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;
using static MiniOmni.SK.Cli.Bench.BenchTools;

namespace MiniOmni.SK.Cli.Bench;

/// <summary>Each stage timed on its own: the encoder, the codec, llama.cpp's decode by rows, the output heads.</summary>
internal static class StageBenchmarks
{
    private const double QuestionSeconds = 2.0;

    /// <summary>Runs every stage's figures into <paramref name="figures"/>.</summary>
    public static void Run(ModelDirectory directory, BenchSettings settings, Dictionary<string, object> figures)
    {
        var options = new GgmlComputeOptions { Threads = settings.Threads };
        using (var file = GgufFile.Open(directory.AudioPath))
        {
            var parameters = AudioModelParameters.Read(file);
            Encoder(file, parameters, options, settings.Repeats, figures);
            if (settings.EncoderOnly)
            {
                return;
            }

            Codec(file, parameters, options, settings.Repeats, figures);
        }

        BackboneAndHeads(directory, settings, figures);
    }

    private static void Encoder(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, int repeats, Dictionary<string, object> figures)
    {
        using var encoder = Status("loading the encoder", () => new WhisperEncoder(file, parameters, options));
        var random = new Random(1);
        var samples = new float[(int)(QuestionSeconds * parameters.InputSampleRate)];
        for (int i = 0; i < samples.Length; i++)
        {
            samples[i] = (float)(0.1 * Math.Sin(i * 0.05) + 0.01 * (random.NextDouble() - 0.5));
        }

        int frames = Audio.WhisperLogMel.FeatureFrameCount(samples.Length);
        figures["mel_ms"] = Median(repeats, () => Audio.WhisperLogMel.Compute(samples));
        float[] mel = Audio.WhisperLogMel.Compute(samples);
        figures["encoder_exact_ms"] = Status("encoder, exact", () => Median(repeats, () => encoder.Encode(mel, frames, EncoderMode.Exact)));
        figures["encoder_fast_ms"] = Status("encoder, fast", () => Median(repeats, () => encoder.Encode(mel, frames, EncoderMode.Fast)));
        figures["question_seconds"] = QuestionSeconds;
        var stored = file.GetTensor(MiniOmniGgufKeys.WhisperTensorPrefix + "encoder.blocks.0.attn.query.weight").Type;
        figures["encoder_matrix_type"] = stored.ToString();
        if (stored != GgmlType.F32)
        {
            // The same weights held as f32, as an f32 model holds them: what quantized matrices gain, and what they cost in accuracy.
            using var full = Status("loading the encoder with f32 matrices", () => new WhisperEncoder(file, parameters, options, matrixType: GgmlType.F32));
            double quantized = (double)figures["encoder_exact_ms"];
            double f32 = Status("encoder, exact, f32 matrices", () => Median(repeats, () => full.Encode(mel, frames, EncoderMode.Exact)));
            figures["encoder_exact_f32_ms"] = f32;
            figures["encoder_fast_f32_ms"] = Status("encoder, fast, f32 matrices", () => Median(repeats, () => full.Encode(mel, frames, EncoderMode.Fast)));
            figures["encoder_exact_quantized_over_f32"] = Math.Round(quantized / f32, 3);
            var a = encoder.Encode(mel, frames, EncoderMode.Exact);
            var b = full.Encode(mel, frames, EncoderMode.Exact);
            figures["encoder_quantized_feature_max_diff_over_max"] = Math.Round(MaxDiff(a.WhisperFeatures, b.WhisperFeatures) / b.WhisperFeatures.Max(Math.Abs), 5);
            figures["encoder_quantized_adapter_max_diff_over_max"] = Math.Round(MaxDiff(a.AdapterOutput, b.AdapterOutput) / b.AdapterOutput.Max(Math.Abs), 5);
        }
    }

    private static void Codec(GgufFile file, AudioModelParameters parameters, GgmlComputeOptions options, int repeats, Dictionary<string, object> figures)
    {
        const int AnswerFrames = 64;
        using var decoder = Status("loading the codec", () => new SnacDecoder(file, parameters, options, AnswerFrames));
        var random = new Random(2);
        int[][] frames = [.. Enumerable.Range(0, AnswerFrames).Select(_ => Enumerable.Range(0, 7).Select(_ => random.Next(parameters.Snac.CodebookSize)).ToArray())];
        double speechSeconds = AnswerFrames * parameters.SamplesPerFrame / (double)parameters.Snac.SampleRate;
        // The fused CPU kernels run System.Numerics.Tensors code that .NET recompiles optimized only after some calls
        // and a pause: a long-running host pays that once, so let it happen before the first figure.
        Status("codec, warm-up", () =>
        {
            for (int i = 0; i < 10; i++)
            {
                decoder.Decode(SnacCodes.FromFrames(frames[..4]));
            }

            Thread.Sleep(500);
            return 0;
        });
        double Streamed(StreamingOptions streaming) => Median(repeats, () =>
        {
            var stream = new StreamingSnacDecoder(decoder, parameters.SamplesPerFrame, streaming);
            foreach (var frame in frames)
            {
                stream.Append(frame);
            }

            stream.Flush();
        });

        figures["snac_chunk_4_frames_ms"] = Status("codec, isolated 4-frame chunk", () => Median(repeats, () => decoder.Decode(SnacCodes.FromFrames(frames[..4]))));
        figures["snac_chunk_16_frames_ms"] = Status("codec, 16-frame chunk", () => Median(repeats, () => decoder.Decode(SnacCodes.FromFrames(frames[..16]))));
        foreach (var (name, streaming) in new[] { ("isolated_4", StreamingOptions.Isolated), ("context_4", new StreamingOptions()), ("engine_growing", StreamingOptions.Speech) })
        {
            figures[$"snac_streaming_{name}_seconds_per_second_of_speech"] = Status($"codec, streaming {name}", () => Math.Round(Streamed(streaming) / 1000 / speechSeconds, 3));
        }

        double whole = Status($"codec, {AnswerFrames} frames at once", () => Median(repeats, () => decoder.Decode(SnacCodes.FromFrames(frames))));
        figures["snac_whole_answer_seconds_per_second_of_speech"] = Math.Round(whole / 1000 / speechSeconds, 3);

        // Four answers' first chunks (4 frames and one of lookahead each): one graph each, or one graph for all.
        var windows = Enumerable.Range(0, 4).Select(i => SnacCodes.FromFrames(frames[(i * 6)..(i * 6 + 6)])).ToList();
        var separate = new List<double>();
        var together = new List<double>();
        Status("codec, four windows apart and in one graph", () =>
        {
            for (int round = 0; round <= 2 * repeats; round++)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                foreach (var window in windows)
                {
                    decoder.Decode(window);
                }

                separate.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                decoder.DecodeBatch(windows);
                together.Add(clock.Elapsed.TotalMilliseconds);
            }

            return 0;
        });
        figures["snac_4_windows_apart_ms"] = Math.Round(Percentile(separate.Skip(1), 0.5), 1);
        figures["snac_4_windows_one_graph_ms"] = Math.Round(Percentile(together.Skip(1), 0.5), 1);
    }

    private static void BackboneAndHeads(ModelDirectory directory, BenchSettings settings, Dictionary<string, object> figures)
    {
        int repeats = settings.Repeats;
        using var file = GgufFile.Open(directory.VocabularyPath);
        MiniOmniVocabulary vocabulary;
        GgmlType? textHeadType;
        using (var audio = GgufFile.Open(directory.AudioPath))
        {
            vocabulary = MiniOmniVocabulary.From(AudioModelParameters.Read(audio));
            textHeadType = audio.Metadata.TryGetValue(MiniOmniGgufKeys.FileType, out var type) && type is string name && ModelFileTypes.Names.Contains(name)
                ? ModelFileTypes.Parse(name).TextHeadType() : null;
        }

        const int MaxRows = 8;
        var backboneOptions = new BackboneOptions { ContextSize = 4096, MaxSequences = MaxRows, Threads = settings.Threads };
        var heads = new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = settings.Threads }, MaxRows, textHeadType: textHeadType);
        using var backbone = Status("loading the backbone", () => Engine.Backbone.Load(directory.BackbonePath, heads, backboneOptions));
        int width = backbone.EmbeddingLength;
        var random = new Random(3);
        float[] Embedding() => [.. Enumerable.Range(0, width).Select(_ => (float)(random.NextDouble() - 0.5) * 0.02f)];

        // What the engine measures at load: the cost of 1..8-row decodes and of a prompt position, and the plans they give.
        Status("backbone, decode costs", () =>
        {
            while (backbone.MeasureNextCost())
            {
            }

            return 0;
        });
        var costs = backbone.Costs;
        figures["decode_costs_ms_by_rows"] = Enumerable.Range(1, costs.MaxRows).ToDictionary(rows => rows.ToString(), rows => Math.Round(costs.StepMilliseconds(rows), 1));
        figures["decode_cost_prompt_position_ms"] = Math.Round(costs.PromptPositionMilliseconds, 2);
        figures["decode_plans"] = Plans(costs);
        foreach (var (head, headCosts) in new[] { ("text", backbone.Heads.TextCosts), ("audio", backbone.Heads.AudioCosts) })
        {
            figures[$"heads_{head}_product_costs_ms_by_positions"] = Enumerable.Range(1, headCosts.MaxRows).ToDictionary(rows => rows.ToString(), rows => Math.Round(headCosts.StepMilliseconds(rows), 2));
            figures[$"heads_{head}_product_plans"] = Plans(headCosts);
        }

        int prompt = 3 + Audio.WhisperLogMel.FeatureFrameCount((int)(QuestionSeconds * 16000)) + 1;
        var batch = backbone.CreateBatch();
        figures["prefill_positions"] = prompt;
        figures["prefill_ms"] = Status("backbone, prefill", () => Median(repeats, () =>
        {
            backbone.RemoveSequence((LLamaSeqId)0);
            batch.Clear();
            for (int p = 0; p < prompt; p++)
            {
                batch.Add(Embedding(), (LLamaPos)p, (LLamaSeqId)0, p == prompt - 1 ? OutputHeadSet.TextAndAudio : OutputHeadSet.None);
            }

            backbone.Decode(batch);
        }));

        // Every sequence continues from a copy of the first, as a batch-parallel answer does.
        for (int sequence = 1; sequence < MaxRows; sequence++)
        {
            backbone.CopySequence((LLamaSeqId)0, (LLamaSeqId)sequence, 0, prompt);
        }

        int[] positions = [.. Enumerable.Repeat(prompt, MaxRows)];
        var step = Enumerable.Range(0, MaxRows).Select(_ => Embedding()).ToArray();
        double Step(int rows, Action<BackboneBatch> decode, Func<int, OutputHeadSet> heads) => Median(repeats * 4, () =>
        {
            batch.Clear();
            for (int s = 0; s < rows; s++)
            {
                batch.Add(step[s], (LLamaPos)positions[s]++, (LLamaSeqId)s, heads(s));
            }

            decode(batch);
        });

        // llama.cpp alone, as planned (apart, together or padded), for 1 to 8 rows; then steps with the heads they need.
        var bare = new Dictionary<string, double>();
        foreach (int rows in new[] { 1, 2, 3, 4, 6, 8 })
        {
            bare[rows.ToString()] = Status($"backbone, bare step of {rows}", () => Step(rows, backbone.DecodeHiddenStates, _ => OutputHeadSet.TextAndAudio));
        }

        figures["bare_llama_decode_ms_by_rows"] = bare;
        figures["bare_llama_decode_1_sequence_ms"] = bare["1"];
        figures["bare_llama_decode_2_sequence_ms"] = bare["2"];
        figures["decode_step_speaking_ms"] = Status("backbone, speaking step", () => Step(1, backbone.Decode, _ => OutputHeadSet.TextAndAudio));
        figures["decode_step_speaking_after_text_ms"] = Status("backbone, speaking step after the text", () => Step(1, backbone.Decode, _ => OutputHeadSet.Audio));
        figures["decode_step_text_answer_ms"] = Status("backbone, text answer step", () => Step(1, backbone.Decode, _ => OutputHeadSet.Text));
        // Batch-parallel: audio heads for the speaking row, the text head for the thinking row.
        figures["decode_step_batch_parallel_ms"] = Status("backbone, batch-parallel step", () => Step(2, backbone.Decode, s => s == 0 ? OutputHeadSet.Audio : OutputHeadSet.Text));
        figures["decode_step_4_speaking_ms"] = Status("backbone, four speaking rows", () => Step(4, backbone.Decode, _ => OutputHeadSet.TextAndAudio));
        figures["decode_step_8_speaking_ms"] = Status("backbone, eight speaking rows", () => Step(8, backbone.Decode, _ => OutputHeadSet.TextAndAudio));

        // The heads alone, for the sets of rows steps ask for, with the text head as this model type holds it.
        figures["text_head_type"] = heads.TextHeadType.ToString();
        var hidden = Enumerable.Range(0, MaxRows).SelectMany(_ => Embedding()).ToArray();
        HeadFigures(heads, hidden, repeats, "", figures);
        // The other text head type, for comparison: Q8_0 as stored, or Q4_0 as the 4-bit types hold it.
        var other = heads.TextHeadType == GgmlType.Q4_0 ? GgmlType.Q8_0 : GgmlType.Q4_0;
        if (file.GetTensor("output.weight").Type is GgmlType.Q8_0 or GgmlType.F16 or GgmlType.F32)
        {
            using var alternative = Status($"loading the heads with a {other} text head", () => new OutputHeads(file, vocabulary, new GgmlComputeOptions { Threads = settings.Threads }, MaxRows, textHeadType: other));
            Status("heads, measuring their products", () =>
            {
                while (alternative.MeasureNextCost())
                {
                }

                return 0;
            });
            HeadFigures(alternative, hidden, repeats, $"{other.ToString().ToLowerInvariant()}_text_head_", figures);
        }
    }

    private static Dictionary<string, string> Plans(DecodeCosts costs) =>
        Enumerable.Range(1, costs.MaxRows).ToDictionary(rows => rows.ToString(), rows => string.Join(" + ", costs.Plan(rows).Select(d => d.Padding > 0 ? $"{d.Rows}(+{d.Padding} pad)" : $"{d.Rows}")));

    private static void HeadFigures(OutputHeads heads, float[] hidden, int repeats, string prefix, Dictionary<string, object> figures)
    {
        foreach (var (name, sets) in new (string, OutputHeadSet[])[]
        {
            ("text_and_audio", [OutputHeadSet.TextAndAudio]),
            ("audio", [OutputHeadSet.Audio]),
            ("text", [OutputHeadSet.Text]),
            ("batch_parallel_audio_plus_text", [OutputHeadSet.Audio, OutputHeadSet.Text]),
            ("4_speaking_rows", [.. Enumerable.Repeat(OutputHeadSet.TextAndAudio, 4)]),
            ("8_speaking_rows", [.. Enumerable.Repeat(OutputHeadSet.TextAndAudio, 8)]),
        })
        {
            figures[$"heads_{prefix}{name}_ms"] = Status($"heads, {prefix}{name}", () => Median(repeats * 4, () => heads.Compute(hidden.AsSpan(0, sets.Length * heads.EmbeddingLength), sets)));
        }
    }

    private static double MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
}
