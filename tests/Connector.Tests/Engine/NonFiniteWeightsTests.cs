using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// Damaged weights: a copy of the tiny fixture whose backbone, output-head (text and audio-codebook rows) or SNAC codebook
/// tensor holds NaN or Inf loads (the values are not read at load), but an answer fails at its first step with an error
/// naming the model directory and the stage that turned non-finite, instead of speaking noise; and <c>inspect</c>
/// (<see cref="ModelInspection"/>) names the tensor.
/// </summary>
public sealed class NonFiniteWeightsTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>, IDisposable
{
    private static readonly MiniOmniEngineOptions Options = new() { ContextSize = 512, Threads = 2, MaxConcurrentAnswers = 1 };
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public async Task ABackboneTensorHoldingNaNOrInfFailsTheAnswerAtTheBackbonesHiddenStates(float value)
    {
        string model = Damaged(ModelDirectory.BackboneFileName, "output_norm.weight", value, _ => true);

        var error = await AnswerFailsAsync(model, new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", MaxTokens = 4 });

        Assert.Equal("backbone hidden states", error.Key);
        Assert.Equal(Path.GetFullPath(model), error.FilePath);
        Assert.Contains("output_norm.weight", Inspect(model, ModelDirectory.BackboneFileName));
    }

    [Fact]
    public async Task AudioCodebookHeadRowsHoldingInfFailASpokenAnswerAtTheLogits()
    {
        int textRows;
        using (var audio = GgufFile.Open(Path.Combine(converted.Model.Path, ModelDirectory.AudioFileName)))
        {
            textRows = (int)audio.GetInteger(MiniOmniGgufKeys.TextVocabularySize);
        }

        // Only the rows past the text vocabulary: the audio-codebook heads. A text answer never reads them.
        string model = Damaged(ModelDirectory.VocabularyFileName, "output.weight", float.PositiveInfinity, row => row >= textRows);

        var error = await AnswerFailsAsync(model, new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "hi", MaxTokens = 8 });

        Assert.Equal("output heads' logits", error.Key);
        Assert.Equal(Path.GetFullPath(model), error.FilePath);
        using var engine = MiniOmniEngine.Load(model, Options);
        var last = await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", MaxTokens = 3 }).LastAsync();
        Assert.IsType<AnswerCompleted>(last);
        Assert.Contains("output.weight", Inspect(model, ModelDirectory.VocabularyFileName));
    }

    [Fact]
    public async Task ASnacCodebookHoldingNaNFailsTheAnswerAtItsFirstSpeech()
    {
        string codebook;
        using (var audio = GgufFile.Open(Path.Combine(converted.Model.Path, ModelDirectory.AudioFileName)))
        {
            codebook = audio.Tensors.Keys.First(name => name.Contains("quantizers.0.codebook", StringComparison.Ordinal));
        }

        string model = Damaged(ModelDirectory.AudioFileName, codebook, float.NaN, _ => true);

        var error = await AnswerFailsAsync(model, new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "hi", MaxTokens = 24 });

        Assert.Equal("SNAC decoder output", error.Key);
        Assert.Equal(Path.GetFullPath(model), error.FilePath);
        Assert.Contains(codebook, Inspect(model, ModelDirectory.AudioFileName));
    }

    [Fact]
    public void TheFixtureHasNoNonFiniteTensors()
    {
        Assert.All(ModelInspection.Inspect(converted.Model.Path), file => Assert.Empty(file.NonFiniteTensors));
    }

    private static async Task<ModelFileException> AnswerFailsAsync(string model, MiniOmniRequest request)
    {
        using var engine = MiniOmniEngine.Load(model, Options);
        var events = new List<MiniOmniEvent>();
        var error = await Assert.ThrowsAsync<ModelFileException>(async () =>
        {
            await foreach (var update in engine.GenerateAsync(request))
            {
                events.Add(update);
            }
        });
        // No speech was handed out before the error.
        Assert.DoesNotContain(events, e => e is SpeechChunk or AnswerCompleted);
        return error;
    }

    // The non-finite tensors inspect reports for one file, joined.
    private static string Inspect(string model, string fileName) =>
        string.Join("\n", ModelInspection.Inspect(model).Single(f => Path.GetFileName(f.Path) == fileName).NonFiniteTensors);

    // A copy of the converted fixture whose F32 tensor has every element of the rows chosen set to value.
    private string Damaged(string fileName, string tensorName, float value, Func<long, bool> rows)
    {
        string target = Path.Combine(_directory.Path, $"damaged-{Guid.NewGuid():N}");
        Directory.CreateDirectory(target);
        foreach (string path in converted.Model.FilePaths)
        {
            File.Copy(path, Path.Combine(target, Path.GetFileName(path)));
        }

        var file = GgufEditor.Load(Path.Combine(target, fileName));
        file.Change(tensorName, tensor =>
        {
            Assert.Equal(GgmlType.F32, tensor.Type);
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(tensor.Data.AsSpan()).ToArray();
            long width = tensor.Dims[0];
            for (long i = 0; i < values.Length; i++)
            {
                if (rows(i / width))
                {
                    values[i] = value;
                }
            }

            return tensor with { Data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray() };
        });
        file.Save(Path.Combine(target, fileName));
        return target;
    }
}
