using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Connector.Tests.Native;

/// <summary>Tests that count the process's live ggml buffers run alone, so no other test's buffers come and go meanwhile.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeCounterCollection
{
    public const string Name = "native buffer counters";
}

/// <summary>Issue 18's resource class: a failed load or upload frees what it allocated at once, not at some later finalizer.</summary>
[Collection(NativeCounterCollection.Name)]
public sealed class NativeResourceTests(SmallModel small) : IClassFixture<SmallModel>, IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void AnEngineWhoseLastStageFailsFreesEveryStageItLoaded()
    {
        // A backbone file replaced after the directory was checked: the audio stages, the vocabulary, the tokenizer and
        // the heads are loaded by the time the backbone fails.
        var model = small.CopyWith(_directory.Path, ModelDirectory.BackboneFileName, editor => editor.Remove(MiniOmniGgufKeys.HeadlessBackbone));
        var constructor = typeof(MiniOmniEngine).GetConstructors(BindingFlags.NonPublic | BindingFlags.Instance).Single();
        long before = Settle();

        var error = Assert.Throws<TargetInvocationException>(() => constructor.Invoke([model, new MiniOmniEngineOptions { Threads = 2, ContextSize = 512 }, NullLoggerFactory.Instance]));

        Assert.IsType<ModelFileException>(error.InnerException);
        Assert.Equal(before, SafeGgmlBufferHandle.LiveCount);
    }

    [Fact]
    public void AFailedUploadFreesTheWeightsBuffer()
    {
        using var stage = new GgmlStage("test", new GgmlComputeOptions { Threads = 1, UseGpu = false });
        var file = GgufFile.Open(small.Model.AudioPath);
        file.Dispose(); // its tensor table is still there, its data is not: the upload fails after the buffer is allocated
        long before = Settle();

        Assert.Throws<ObjectDisposedException>(() => GgmlWeights.Load(file, name => name.StartsWith("snac.", StringComparison.Ordinal), stage.PrimaryBackend));

        Assert.Equal(before, SafeGgmlBufferHandle.LiveCount);
    }

    [Fact]
    public void LoadedWeightsHoldOneBufferUntilDisposed()
    {
        using var stage = new GgmlStage("test", new GgmlComputeOptions { Threads = 1, UseGpu = false });
        using var file = GgufFile.Open(small.Model.AudioPath);
        long before = Settle();

        var weights = GgmlWeights.Load(file, name => name.StartsWith("snac.", StringComparison.Ordinal), stage.PrimaryBackend);
        Assert.Equal(before + 1, SafeGgmlBufferHandle.LiveCount);
        Parallel.For(0, 8, _ => weights.Dispose());

        Assert.Equal(before, SafeGgmlBufferHandle.LiveCount);
    }

    // Buffers other tests left to finalizers are freed first, so the count moves only with this test's work.
    private static long Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return SafeGgmlBufferHandle.LiveCount;
    }
}
