using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// Issue 18 through the entry point users call: <see cref="MiniOmniEngine.Load"/> checks its options, then every file,
/// before llama.cpp or ggml see them; a bad file is a <see cref="ModelFileException"/> naming it and the key or tensor.
/// </summary>
public sealed class EngineLoadTests(SmallModel small) : IClassFixture<SmallModel>, IDisposable
{
    private static readonly MiniOmniEngineOptions Options = new() { ContextSize = 512, Threads = 2, MaxConcurrentAnswers = 2 };
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task TheSmallModelLoadsAndAnswers()
    {
        using var engine = MiniOmniEngine.Load(small.Model.Path, Options);

        var last = await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi", MaxTokens = 3 }).LastAsync();

        Assert.Equal(3, Assert.IsType<AnswerCompleted>(last).Steps);
    }

    [Theory]
    [InlineData(ModelFileType.F16)]
    [InlineData(ModelFileType.Q8_0)]
    [InlineData(ModelFileType.Q4_K_M)]
    public async Task EveryModelTypePassesTheChecksAndAnswers(ModelFileType type)
    {
        var model = ModelSetWriter.WriteSynthetic(Path.Combine(_directory.Path, type.ToName()), SmallModel.Preset, type, seed: 4);
        using var engine = MiniOmniEngine.Load(model.Path, Options);

        var last = await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "hi", MaxTokens = 12 }).LastAsync();

        Assert.Equal(12, Assert.IsType<AnswerCompleted>(last).Steps);
    }

    [Theory]
    [InlineData(ModelFileType.F32)]
    [InlineData(ModelFileType.F16)]
    [InlineData(ModelFileType.Q8_0)]
    [InlineData(ModelFileType.Q4_K_M)]
    [InlineData(ModelFileType.Q4_0)]
    [InlineData(ModelFileType.IQ4_NL)]
    [InlineData(ModelFileType.Q4_0_Mixed)]
    public async Task TheTinyFixtureConvertedToEveryTypeLoadsAndAnswersInTextAndSpeech(ModelFileType type)
    {
        // Every type `miniomni convert --type` offers, from the original releases' fixture, as a user would convert it.
        Assert.Equal(7, Enum.GetValues<ModelFileType>().Length);
        var model = ModelConverter.Convert(ConvertedFixtureModel.Sources, Path.Combine(_directory.Path, type.ToName()), type);
        using var engine = MiniOmniEngine.Load(model.Path, Options);

        var events = await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "hi", MaxTokens = 12 }).ToListAsync();

        var done = Assert.IsType<AnswerCompleted>(events[^1]);
        Assert.True(done.Steps > 0, $"{type}: no step");
        Assert.True(done.SpeechSeconds > 0, $"{type}: no speech");
        Assert.All(events.OfType<SpeechChunk>(), chunk => Assert.All(chunk.Samples, sample => Assert.True(float.IsFinite(sample))));
        var heard = await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.A1T2, Audio = MiniOmni.SK.Audio.AudioDecoder.DecodeFile(Fixture.Question), MaxTokens = 6 }).LastAsync();
        Assert.True(Assert.IsType<AnswerCompleted>(heard).Steps > 0, $"{type}: no step of the spoken question's answer");
    }

    public static TheoryData<string, string, string> BadFiles => new()
    {
        { ModelDirectory.BackboneFileName, "block_count 0", "qwen2.block_count" },
        { ModelDirectory.BackboneFileName, "key_length 0", "qwen2.attention.key_length" },
        { ModelDirectory.BackboneFileName, "negative epsilon", "qwen2.attention.layer_norm_rms_epsilon" },
        { ModelDirectory.BackboneFileName, "F16 norm", "output_norm.weight" },
        { ModelDirectory.VocabularyFileName, "duplicate token", "tokenizer.ggml.tokens" },
        { ModelDirectory.AudioFileName, "short codebook", "snac.quantizer.quantizers.0.codebook.weight" },
        { ModelDirectory.AudioFileName, "no heads", MiniOmniGgufKeys.WhisperHeads },
        { ModelDirectory.AudioFileName, "eight layers", MiniOmniGgufKeys.AudioLayerCount },
        { ModelDirectory.AudioFileName, "special id outside", MiniOmniGgufKeys.TokenPadAudio },
        { ModelDirectory.AudioFileName, "sample rate 0", MiniOmniGgufKeys.SnacSampleRate },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void ABadFileIsNamedBeforeNativeCodeSeesIt(string fileName, string change, string key)
    {
        var model = small.CopyWith(_directory.Path, fileName, editor =>
        {
            _ = change switch
            {
                "block_count 0" => editor.Set("qwen2.block_count", 0u),
                "key_length 0" => editor.Set("qwen2.attention.key_length", 0u),
                "negative epsilon" => editor.Set("qwen2.attention.layer_norm_rms_epsilon", -1e-6f),
                "F16 norm" => editor.Retype("output_norm.weight", GgmlType.F16),
                "duplicate token" => editor.Set("tokenizer.ggml.tokens", Duplicate((string[])editor.Get("tokenizer.ggml.tokens"))),
                "short codebook" => editor.Set(MiniOmniGgufKeys.SnacCodebookSize, 4097),
                "no heads" => editor.Set(MiniOmniGgufKeys.WhisperHeads, 0),
                "eight layers" => editor.Set(MiniOmniGgufKeys.AudioLayerCount, 8),
                "special id outside" => editor.Set(MiniOmniGgufKeys.TokenPadAudio, 72),
                _ => editor.Set(MiniOmniGgufKeys.SnacSampleRate, 0),
            };
        });

        var error = Assert.Throws<ModelFileException>(() => MiniOmniEngine.Load(model.Path, Options).Dispose());

        Assert.Equal(Path.Combine(model.Path, fileName), error.FilePath);
        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void SwappedFilesAreRefusedByName()
    {
        var model = small.Copy(_directory.Path);
        File.Move(model.BackbonePath, model.BackbonePath + ".tmp");
        File.Move(model.VocabularyPath, model.BackbonePath);
        File.Move(model.BackbonePath + ".tmp", model.VocabularyPath);

        var error = Assert.Throws<ModelFileException>(() => MiniOmniEngine.Load(model.Path, Options).Dispose());

        Assert.StartsWith(model.Path, error.FilePath);
    }

    [Theory]
    [InlineData(nameof(MiniOmniEngineOptions.MaxConcurrentAnswers), 256)]
    [InlineData(nameof(MiniOmniEngineOptions.MaxConcurrentAnswers), 129)]
    [InlineData(nameof(MiniOmniEngineOptions.MaxConcurrentAnswers), 0)]
    [InlineData(nameof(MiniOmniEngineOptions.MaxConcurrentAnswers), -1)]
    [InlineData(nameof(MiniOmniEngineOptions.ContextSize), 0)]
    [InlineData(nameof(MiniOmniEngineOptions.Threads), 0)]
    [InlineData(nameof(MiniOmniEngineOptions.CodecThreads), -2)]
    public void OptionsAreCheckedBeforeAnyFileIsRead(string option, int value)
    {
        var options = option switch
        {
            nameof(MiniOmniEngineOptions.MaxConcurrentAnswers) => Options with { MaxConcurrentAnswers = value },
            nameof(MiniOmniEngineOptions.ContextSize) => Options with { ContextSize = (uint)value },
            nameof(MiniOmniEngineOptions.Threads) => Options with { Threads = value },
            _ => Options with { CodecThreads = value },
        };

        // The directory does not exist: an error about it would mean the files were looked at first.
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => MiniOmniEngine.Load(Path.Combine(_directory.Path, "nowhere"), options));

        Assert.Equal(option, error.ParamName);
    }

    [Fact]
    public async Task ConcurrentDisposeCallsDisposeOnce()
    {
        var engine = MiniOmniEngine.Load(small.Model.Path, Options);

        Parallel.For(0, 16, _ => engine.Dispose());

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.T1T2, Text = "hi" }).GetAsyncEnumerator().MoveNextAsync());
    }

    private static string[] Duplicate(string[] tokens)
    {
        string[] copy = [.. tokens];
        copy[300] = copy[65];
        return copy;
    }
}
