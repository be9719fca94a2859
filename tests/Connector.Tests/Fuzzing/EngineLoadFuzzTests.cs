using CsCheck;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Fuzzing;

/// <summary>
/// The three GGUF files of a model, mutated by structure (keys set to 0, negative, huge or another type; relabelled,
/// reshaped, swapped, dropped and duplicated tensors; odd tokens) and by bytes, loaded through
/// <see cref="MiniOmniEngine.Load"/>: llama.cpp and ggml only ever see files that passed the checks. A case loads (and
/// then answers a short question of each kind without failing) or ends in a <see cref="ModelFiles.ModelFileException"/>;
/// a native abort ends the test host and fails the run.
/// </summary>
public sealed class EngineLoadFuzzTests(SmallModel small, ITestOutputHelper output) : IClassFixture<SmallModel>, IDisposable
{
    private static readonly MiniOmniEngineOptions Options = new() { ContextSize = 256, Threads = 1, MaxConcurrentAnswers = 1 };
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(ModelDirectory.BackboneFileName, 21u)]
    [InlineData(ModelDirectory.VocabularyFileName, 22u)]
    [InlineData(ModelDirectory.AudioFileName, 23u)]
    public void MutatedFilesLoadAndAnswerOrAreRefused(string fileName, uint stream)
    {
        var scratch = new ScratchModels(small.Model, _directory.Path);
        var original = GgufEditor.Load(Path.Combine(small.Model.Path, fileName));
        var mutations = Gen.OneOf(
            GgufMutations.Some.Select(m => (Structure: m, Bytes: Array.Empty<ByteMutation>())),
            ByteMutations.Some.Select(b => (Structure: (Array.Empty<GgufMutation>(), Array.Empty<ByteMutation>()), Bytes: b)));

        FuzzRun.Check($"{fileName} through MiniOmniEngine.Load", mutations, mutation =>
        {
            byte[] bytes = ByteMutations.ApplyAll(mutation.Bytes, mutation.Structure.Item1.Length > 0 ? GgufMutations.Apply(original, mutation.Structure) : original.ToBytes());
            scratch.With(fileName, bytes, LoadAndAnswer);
        }, ciCases: 50, stream, output, minRefused: 1, minAccepted: 1);
    }

    [Fact]
    public void MutatedQuantizedBackbonesLoadAndAnswerOrAreRefused()
    {
        // llama.cpp's quantizer's own file: k-quant and fallback types, a token table written without its trailing 1.
        var model = ModelSetWriter.WriteSynthetic(Path.Combine(_directory.Path, "q4_k_m"), SmallModel.Preset, ModelFileType.Q4_K_M, seed: 5);
        var scratch = new ScratchModels(model, _directory.Path);
        var original = GgufEditor.Load(model.BackbonePath);

        FuzzRun.Check("q4_k_m backbone.gguf through MiniOmniEngine.Load", GgufMutations.Some,
            mutation => scratch.With(ModelDirectory.BackboneFileName, GgufMutations.Apply(original, mutation), LoadAndAnswer), ciCases: 30, stream: 24u, output, minRefused: 1, minAccepted: 1);
    }

    // A model that loads must answer: a text question in text, and a spoken one in speech, a few steps each.
    private static void LoadAndAnswer(ModelDirectory model)
    {
        using var engine = MiniOmniEngine.Load(model.Path, Options);
        foreach (var request in new[]
        {
            new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", MaxTokens = 2 },
            new MiniOmniRequest { Task = MiniOmniTask.A1A2, Audio = new float[3200], MaxTokens = 12, EncoderMode = MiniOmni.SK.Speech.EncoderMode.Fast },
        })
        {
            var events = engine.GenerateAsync(request).ToBlockingEnumerable().ToList();
            Assert.IsType<AnswerCompleted>(events[^1]);
        }
    }
}
