using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.ModelFiles.Conversion;

/// <summary>Reports on the caller's thread, in order (<see cref="Progress{T}"/> posts to the thread pool instead).</summary>
public sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    /// <inheritdoc />
    public void Report(T value) => report(value);
}

/// <summary>Progress of writing a model set: the stage, the current item, and how far along it is.</summary>
public readonly record struct ConversionProgress(string Stage, string? Item, long Done, long Total);

/// <summary>
/// What goes into a model set: the backbone, its tokenizer, and the audio file. With <c>TiedHead</c> the output head is
/// the token embedding table (litgpt's <c>tie_word_embeddings</c>).
/// </summary>
public sealed record ModelSetContent(
    BackboneShape Backbone,
    HfTokenizer Tokenizer,
    BackboneGgufBuilder.TensorSource BackboneSource,
    AudioFileDescription Audio,
    IEnumerable<AudioTensor> AudioTensors,
    string SourceDescription,
    bool TiedHead = false);

/// <summary>
/// Writes <see cref="ModelDirectory.AudioFileName"/>, <see cref="ModelDirectory.VocabularyFileName"/> and
/// <see cref="ModelDirectory.BackboneFileName"/> into a staging folder and moves them into place only when all are
/// complete: a failed or cancelled run leaves the target as it was.
/// </summary>
public static class ModelSetWriter
{
    /// <summary>Writes <paramref name="content"/> as <paramref name="type"/> into <paramref name="outputDirectory"/>.</summary>
    public static ModelDirectory Write(
        string outputDirectory,
        ModelSetContent content,
        ModelFileType type,
        IProgress<ConversionProgress>? progress = null,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        logger ??= NullLogger.Instance;
        var target = new ModelDirectory(Path.GetFullPath(outputDirectory));
        Directory.CreateDirectory(target.Path);
        string staging = Path.Combine(target.Path, $".partial-{Guid.NewGuid():N}");
        var staged = new ModelDirectory(staging);
        Directory.CreateDirectory(staging);
        try
        {
            // Every file is described (every source tensor found and shape-checked) before any is written.
            bool quantize = type.IsQuantized();
            var audio = new GgufWriter();
            AudioGgufBuilder.Describe(audio, content.Audio, content.AudioTensors);
            var vocabulary = new GgufWriter();
            // The embedding table and head are written by us, so a quantized model gets Q8_0 (llama.cpp's Q4_K_M would pick Q6_K for the head).
            BackboneGgufBuilder.DescribeVocabulary(vocabulary, content.Backbone, content.Tokenizer, content.BackboneSource, type.OwnMatrixType(), content.SourceDescription, content.TiedHead);
            var backbone = new GgufWriter();
            BackboneGgufBuilder.DescribeBackbone(backbone, content.Backbone, content.BackboneSource,
                type == ModelFileType.F16 ? GgmlType.F16 : GgmlType.F32, content.SourceDescription);

            var clock = Stopwatch.StartNew();
            audio.WriteTo(staged.AudioPath, Forward(progress, "audio"), cancellationToken);
            logger.LogInformation("Wrote the audio file ({Tensors} tensors) in {Seconds:F1} s.", audio.TensorCount, clock.Elapsed.TotalSeconds);

            clock.Restart();
            vocabulary.WriteTo(staged.VocabularyPath, Forward(progress, "vocabulary"), cancellationToken);
            logger.LogInformation("Wrote the vocabulary, embedding table and output head in {Seconds:F1} s.", clock.Elapsed.TotalSeconds);

            clock.Restart();
            string unquantized = quantize ? Path.Combine(staging, "backbone.f32.gguf") : staged.BackbonePath;
            backbone.WriteTo(unquantized, Forward(progress, "backbone"), cancellationToken);
            logger.LogInformation("Wrote the backbone ({Tensors} tensors) in {Seconds:F1} s.", backbone.TensorCount, clock.Elapsed.TotalSeconds);

            if (quantize)
            {
                clock.Restart();
                progress?.Report(new ConversionProgress("quantize", type.ToName(), 0, 1));
                cancellationToken.ThrowIfCancellationRequested();
                if (type == ModelFileType.Q4_0_Mixed)
                {
                    MixedQuantization.Quantize(unquantized, staged.BackbonePath, cancellationToken);
                }
                else
                {
                    LlamaQuantization.Quantize(unquantized, staged.BackbonePath, type, Environment.ProcessorCount);
                }

                File.Delete(unquantized);
                progress?.Report(new ConversionProgress("quantize", type.ToName(), 1, 1));
                logger.LogInformation("Quantized the backbone to {Type} in {Seconds:F1} s.", type.ToName(), clock.Elapsed.TotalSeconds);
            }

            File.Move(staged.AudioPath, target.AudioPath, overwrite: true);
            File.Move(staged.VocabularyPath, target.VocabularyPath, overwrite: true);
            File.Move(staged.BackbonePath, target.BackbonePath, overwrite: true);
            return target;
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Writes a model set of <paramref name="preset"/>'s shapes with random weights.</summary>
    public static ModelDirectory WriteSynthetic(
        string outputDirectory,
        ModelPreset preset,
        ModelFileType type,
        int seed,
        HfTokenizer? tokenizer = null,
        IProgress<ConversionProgress>? progress = null,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        var weights = new SyntheticWeights(seed);
        var audio = preset.DescribeAudio(type);
        var audioTensors = AudioTensorLayout.All(audio, preset.AdapterIntermediate)
            .Select(entry => new AudioTensor(entry.GgufName, entry.Slot.Shape, () => weights.Generate(entry.GgufName, entry.Slot.Shape)));
        var content = new ModelSetContent(
            preset.Backbone,
            tokenizer ?? HfTokenizer.ByteLevel(preset.Backbone.RowCount),
            (name, shape) => () => weights.Generate(name, shape),
            audio,
            audioTensors,
            $"synthetic:{preset.Name}");
        return Write(outputDirectory, content, type, progress, logger, cancellationToken);
    }

    private static IProgress<GgufWriteProgress>? Forward(IProgress<ConversionProgress>? progress, string stage) =>
        progress is null ? null : new SynchronousProgress<GgufWriteProgress>(p => progress.Report(new ConversionProgress(stage, p.TensorName, p.BytesWritten, p.TotalBytes)));

}
