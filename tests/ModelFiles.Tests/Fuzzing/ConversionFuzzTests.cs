using CsCheck;
using MiniOmni.SK.ModelFiles.Conversion;
using Xunit.Abstractions;

namespace MiniOmni.SK.ModelFiles.Tests.Fuzzing;

/// <summary>
/// The original releases, one file at a time corrupted, converted through <see cref="ModelConverter.Convert"/> as
/// <c>miniomni convert</c> does: zip+pickle checkpoints (litgpt's <c>lit_model.pth</c>, openai's Whisper <c>.pt</c>,
/// SNAC's <c>pytorch_model.bin</c>) as raw bytes, as pickles and storages behind valid CRCs, and as entries; safetensors;
/// <c>model_config.yaml</c>, <c>tokenizer.json</c> and the <c>config.json</c> files as text and as trees; and files
/// swapped for one another. Every case converts or ends in a <see cref="ModelFileException"/>; whatever converts must
/// pass the checks the engine runs before loading.
/// </summary>
public sealed class ConversionFuzzTests(SmallSources sources, ITestOutputHelper output) : IClassFixture<SmallSources>, IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void TheSmallSourcesConvert()
    {
        var model = ModelConverter.Convert(sources.Sources, Path.Combine(_directory.Path, "out"), ModelFileType.F32);
        var hf = ModelConverter.Convert(sources.Sources with { Whisper = sources.WhisperHf }, Path.Combine(_directory.Path, "out-hf"), ModelFileType.F32);

        Assert.Equal(1024, model.Check().VocabularyRows);
        Assert.Equal(File.ReadAllBytes(model.AudioPath).Length, File.ReadAllBytes(hf.AudioPath).Length);
    }

    [Theory]
    [InlineData("mini-omni/lit_model.pth", 10u, 70, 4)]
    [InlineData("whisper/small.pt", 11u, 70, 7)]
    [InlineData("snac/pytorch_model.bin", 12u, 75, 2)]
    public void TorchCheckpointsConvertOrAreRefused(string file, uint stream, int minRefused, int minAccepted) => Fuzz(file, SourceMutations.Zip, 100, stream, minRefused, minAccepted);

    [Theory]
    [InlineData("mini-omni/model_config.yaml", 13u, 50, 26)]
    public void LitGptConfigsConvertOrAreRefused(string file, uint stream, int minRefused, int minAccepted) => Fuzz(file, SourceMutations.Yaml, 120, stream, minRefused, minAccepted);

    [Theory]
    [InlineData("mini-omni/tokenizer.json", 14u, 55, 13)]
    [InlineData("snac/config.json", 15u, 75, 1)]
    [InlineData("whisper-hf/config.json", 16u, 70, 5)]
    [InlineData("whisper-hf/model.safetensors", 17u, 70, 5)]
    public void JsonFilesAndSafetensorsConvertOrAreRefused(string file, uint stream, int minRefused, int minAccepted) => Fuzz(file, SourceMutations.Json, 100, stream, minRefused, minAccepted);

    [Fact]
    public void SwappedFilesAreRefused()
    {
        var scratch = new ScratchSources(sources, _directory.Path);
        var (cases, refused) = FuzzRun.Check("swapped files", Gen.Select(Gen.Int[0, ScratchSources.Files.Length - 1], Gen.Int[0, ScratchSources.Files.Length - 1]).Where(p => p.Item1 != p.Item2),
            pair => scratch.Swap(ScratchSources.Files[pair.Item1], ScratchSources.Files[pair.Item2]), ciCases: 40, stream: 18u, output, minRefused: 40, minAccepted: 0);

        // Every swap is refused: no file reads as another, so nothing is accepted here by design.
        Assert.Equal(cases, refused);
    }

    private void Fuzz(string file, Gen<SourceMutation> mutations, int ciCases, uint stream, int minRefused, int minAccepted)
    {
        var scratch = new ScratchSources(sources, _directory.Path);
        byte[] original = File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(sources.Checkpoint)!, file));

        FuzzRun.Check(file, mutations, mutation => scratch.Convert(file, mutation.Apply(original)), ciCases, stream, output, minRefused, minAccepted);
    }
}

/// <summary>A copy of the small sources per fuzzing thread, in which one file at a time is replaced and then put back.</summary>
public sealed class ScratchSources(SmallSources original, string parent)
{
    /// <summary>The files a case may corrupt or swap, relative to the sources' root.</summary>
    public static readonly string[] Files =
    [
        "mini-omni/lit_model.pth", "mini-omni/model_config.yaml", "mini-omni/tokenizer.json", "whisper/small.pt",
        "snac/pytorch_model.bin", "snac/config.json", "whisper-hf/config.json", "whisper-hf/model.safetensors",
    ];

    private readonly string _root = Path.GetDirectoryName(original.Checkpoint)!;
    private readonly ThreadLocal<string[]> _dirty = new(() => []);

    private readonly ThreadLocal<string> _copies = new(() =>
    {
        string root = Path.GetDirectoryName(original.Checkpoint)!;
        string target = Path.Combine(parent, $"sources-{Environment.CurrentManagedThreadId}-{Guid.NewGuid():N}");
        foreach (string file in Files)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(target, file))!);
            File.Copy(Path.Combine(root, file), Path.Combine(target, file));
        }

        return target;
    });

    /// <summary>Converts with <paramref name="file"/> holding <paramref name="bytes"/>; what converts must pass the engine's checks.</summary>
    public void Convert(string file, byte[] bytes)
    {
        string root = Prepare([file]);
        File.WriteAllBytes(Path.Combine(root, file), bytes);
        Run(root, file.StartsWith("whisper-hf/", StringComparison.Ordinal));
    }

    /// <summary>Converts with the contents of two files exchanged (each then read as the other).</summary>
    public void Swap(string first, string second)
    {
        string root = Prepare([first, second]);
        File.Copy(Path.Combine(_root, first), Path.Combine(root, second), overwrite: true);
        File.Copy(Path.Combine(_root, second), Path.Combine(root, first), overwrite: true);
        Run(root, huggingFaceWhisper: first.StartsWith("whisper-hf/", StringComparison.Ordinal) || second.StartsWith("whisper-hf/", StringComparison.Ordinal));
    }

    // This thread's copy, with the files the last case changed put back unless this case overwrites them anyway.
    private string Prepare(string[] changing)
    {
        string root = _copies.Value!;
        foreach (string file in _dirty.Value!.Except(changing))
        {
            File.Copy(Path.Combine(_root, file), Path.Combine(root, file), overwrite: true);
        }

        _dirty.Value = changing;
        return root;
    }

    private static void Run(string root, bool huggingFaceWhisper)
    {
        var sources = new ConversionSources(Path.Combine(root, "mini-omni"), huggingFaceWhisper ? Path.Combine(root, "whisper-hf") : Path.Combine(root, "whisper", "small.pt"), Path.Combine(root, "snac"));
        string output = Path.Combine(root, "out");
        ModelConverter.Convert(sources, output, ModelFileType.F32).Check();
    }
}
