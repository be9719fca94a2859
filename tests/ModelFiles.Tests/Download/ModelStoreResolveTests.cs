using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;

namespace MiniOmni.SK.ModelFiles.Tests.Download;

/// <summary>What a <c>--model</c> argument or <c>AddMiniOmni</c>'s model path resolves to.</summary>
public sealed class ModelStoreResolveTests
{
    [Fact]
    public async Task AnExistingDirectoryIsUsedAsItIs()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        foreach (string file in new ModelDirectory(directory.Path).FilePaths)
        {
            File.WriteAllText(file, "");
        }

        var model = await ModelStore.ResolveAsync(directory.Path, new ModelStoreOptions { Offline = true });

        Assert.Equal(directory.Path, model.Path);
    }

    [Fact]
    public async Task ADirectoryOfAnEarlierVersionNamesTheMissingVocabularyFile()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        File.WriteAllText(Path.Combine(directory.Path, ModelDirectory.BackboneFileName), "");
        File.WriteAllText(Path.Combine(directory.Path, ModelDirectory.AudioFileName), "");

        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.ResolveAsync(directory.Path, new ModelStoreOptions { Offline = true }));

        Assert.Contains(ModelDirectory.VocabularyFileName, error.Message);
        Assert.Contains("convert", error.Message);
    }

    [Fact]
    public async Task APathThatIsNeitherADirectoryNorAModelNameIsNamedInTheError()
    {
        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.ResolveAsync("/nowhere/miniomni-model", new ModelStoreOptions { Offline = true }));

        Assert.Contains("/nowhere/miniomni-model", error.Message);
    }

    [Fact]
    public async Task AModelNameGoesThroughTheStore()
    {
        using var cache = Fixture.CreateTemporaryDirectory();

        // Offline with an empty cache: the store refuses, naming the model, which shows the name was taken as a name.
        var error = await Assert.ThrowsAsync<ModelFileException>(() => ModelStore.ResolveAsync("mini-omni", new ModelStoreOptions { Offline = true, CacheDirectory = cache.Path }));

        Assert.Contains("offline", error.Message, StringComparison.OrdinalIgnoreCase);
    }
}
