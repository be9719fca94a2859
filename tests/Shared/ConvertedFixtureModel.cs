using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.Tests;

/// <summary>The golden tiny-a checkpoints converted once to f32, shared by the tests of a class.</summary>
public sealed class ConvertedFixtureModel : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public ConvertedFixtureModel()
    {
        Model = ModelConverter.Convert(Sources, _directory.Path, ModelFileType.F32);
    }

    public static ConversionSources Sources { get; } = new(Fixture.Checkpoint, Fixture.Whisper, Fixture.Snac);

    public ModelDirectory Model { get; }

    public void Dispose() => _directory.Dispose();
}
