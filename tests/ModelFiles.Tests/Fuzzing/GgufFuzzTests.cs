using CsCheck;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using Xunit.Abstractions;

namespace MiniOmni.SK.ModelFiles.Tests.Fuzzing;

/// <summary>
/// The three GGUF files of a model, mutated byte by byte (flips, truncations, interesting integers over header fields,
/// insertions, deletions) and by structure (keys set to 0, negative, huge or another type; relabelled and reshaped
/// tensors; swapped, dropped and duplicated tensors; odd tokens), read through <see cref="GgufFile"/> and checked through
/// <see cref="ModelDirectory.Check"/>, as the engine does before llama.cpp and ggml see them. Every case must load or
/// end in a <see cref="ModelFileException"/>; whatever loads must read back whole.
/// </summary>
public sealed class GgufFuzzTests(SmallModel small, ITestOutputHelper output) : IClassFixture<SmallModel>, IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(ModelDirectory.BackboneFileName, 1u, 115, 7)]
    [InlineData(ModelDirectory.VocabularyFileName, 2u, 100, 14)]
    [InlineData(ModelDirectory.AudioFileName, 3u, 110, 10)]
    public void StructureMutationsAreCheckedOrRefused(string fileName, uint stream, int minRefused, int minAccepted)
    {
        var scratch = new ScratchModels(small.Model, _directory.Path);
        var original = GgufEditor.Load(Path.Combine(small.Model.Path, fileName));

        FuzzRun.Check($"{fileName} structure", GgufMutations.Some, mutation =>
            scratch.With(fileName, GgufMutations.Apply(original, mutation), CheckAndReadAll), ciCases: 160, stream, output, minRefused, minAccepted,
            print: m => $"{string.Join(", ", m.Structure.AsEnumerable())} then {string.Join(", ", m.Bytes.AsEnumerable())}");
    }

    [Theory]
    [InlineData(ModelDirectory.BackboneFileName, 4u, 110, 11)]
    [InlineData(ModelDirectory.VocabularyFileName, 5u, 115, 7)]
    [InlineData(ModelDirectory.AudioFileName, 6u, 120, 4)]
    public void ByteMutationsAreReadOrRefused(string fileName, uint stream, int minRefused, int minAccepted)
    {
        var scratch = new ScratchModels(small.Model, _directory.Path);
        byte[] original = File.ReadAllBytes(Path.Combine(small.Model.Path, fileName));

        FuzzRun.Check($"{fileName} bytes", ByteMutations.Some, mutations =>
            scratch.With(fileName, ByteMutations.ApplyAll(mutations, original), CheckAndReadAll), ciCases: 160, stream, output, minRefused, minAccepted,
            print: m => string.Join(", ", m.AsEnumerable()));
    }

    // What the engine does before any native code: check the directory; then read every tensor of every file, as the
    // embedding mix, the heads and the weight uploads would.
    private static void CheckAndReadAll(ModelDirectory model)
    {
        model.Check();
        foreach (string path in model.FilePaths)
        {
            using var file = GgufFile.Open(path);
            foreach (var tensor in file.Tensors.Values)
            {
                if (tensor.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0)
                {
                    var row = new float[tensor.Dims[0]];
                    file.ReadRow(tensor, tensor.ElementCount / tensor.Dims[0] - 1, row);
                }

                Assert.Equal(tensor.ByteSize, file.GetTensorBytes(tensor).Length);
            }
        }
    }
}
