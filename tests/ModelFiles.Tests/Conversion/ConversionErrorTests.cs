using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.ModelFiles.Tests.Conversion;

/// <summary>Bad inputs to a whole conversion: each fails fast, names what is wrong, and leaves the output directory untouched.</summary>
public sealed class ConversionErrorTests
{
    [Fact]
    public void ADirectoryOfTheWrongModelIsNamed()
    {
        using var output = Fixture.CreateTemporaryDirectory();
        var sources = ConvertedFixtureModel.Sources with { CheckpointDirectory = Fixture.Snac };

        var error = Assert.Throws<ModelFileException>(() => ModelConverter.Convert(sources, output.Path, ModelFileType.F32));

        Assert.Contains(Fixture.Snac, error.Message);
        Assert.Empty(Directory.GetFileSystemEntries(output.Path));
    }

    [Fact]
    public void SwappedWhisperAndSnacAreRefused()
    {
        using var output = Fixture.CreateTemporaryDirectory();
        var sources = ConvertedFixtureModel.Sources with { Whisper = Path.Combine(Fixture.Snac, "pytorch_model.bin") };

        var error = Assert.Throws<ModelFileException>(() => ModelConverter.Convert(sources, output.Path, ModelFileType.F32));

        Assert.Contains("pytorch_model.bin", error.Message);
        Assert.Empty(Directory.GetFileSystemEntries(output.Path));
    }

    [Fact]
    public void AMisshapenTensorIsNamedBeforeAnythingIsWritten()
    {
        using var sources = Fixture.CreateTemporaryDirectory();
        using var output = Fixture.CreateTemporaryDirectory();
        string checkpoint = Path.Combine(sources.Path, "checkpoint");
        Directory.CreateDirectory(checkpoint);
        foreach (string file in Directory.GetFiles(Fixture.Checkpoint))
        {
            File.Copy(file, Path.Combine(checkpoint, Path.GetFileName(file)));
        }

        // The same weights described as a wider model: every tensor now has the wrong shape.
        string config = Path.Combine(checkpoint, "model_config.yaml");
        File.WriteAllText(config, File.ReadAllText(config).Replace("intermediate_size: 64", "intermediate_size: 128"));

        var error = Assert.Throws<ModelFileException>(() =>
            ModelConverter.Convert(ConvertedFixtureModel.Sources with { CheckpointDirectory = checkpoint }, output.Path, ModelFileType.F32));

        Assert.NotNull(error.Key);
        Assert.Contains("128", error.Message);
        Assert.Empty(Directory.GetFileSystemEntries(output.Path));
    }

    [Fact]
    public void AMissingCheckpointDirectoryIsNamed()
    {
        using var output = Fixture.CreateTemporaryDirectory();
        string missing = Path.Combine(output.Path, "no-such-dir");

        var error = Assert.Throws<ModelFileException>(() =>
            ModelConverter.Convert(ConvertedFixtureModel.Sources with { CheckpointDirectory = missing }, output.Path, ModelFileType.F32));

        Assert.Contains(missing, error.Message);
    }
}
