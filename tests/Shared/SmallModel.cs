using MiniOmni.SK.ModelFiles.Conversion;

namespace MiniOmni.SK.Tests;

/// <summary>
/// A complete model set of the fixture's tiny shapes but with a 1024-row vocabulary (512 text ids, seven audio layers
/// of 72), random weights and a byte-level tokenizer: every file is small, so tests and fuzzers can copy, corrupt and
/// load it hundreds of times.
/// </summary>
public sealed class SmallModel : IDisposable
{
    private readonly Fixture.TemporaryDirectory _directory = Fixture.CreateTemporaryDirectory();

    public SmallModel()
    {
        Model = ModelSetWriter.WriteSynthetic(System.IO.Path.Combine(_directory.Path, "model"), Preset, ModelFileType.F32, seed: 11);
    }

    public static ModelPreset Preset { get; } = ModelPresets.Tiny with
    {
        Name = "small",
        Backbone = ModelPresets.Tiny.Backbone with { Name = "small", RowCount = 1024, ContextLength = 512 },
        TextVocabularySize = 512,
        AudioVocabularySize = 72,
    };

    public ModelDirectory Model { get; }

    /// <summary>A copy of the model in a new directory under <paramref name="parent"/>, with <paramref name="edit"/> applied to one of its files.</summary>
    public ModelDirectory CopyWith(string parent, string fileName, Action<GgufEditor> edit)
    {
        var copy = Copy(parent);
        string path = System.IO.Path.Combine(copy.Path, fileName);
        var editor = GgufEditor.Load(path);
        edit(editor);
        editor.Save(path);
        return copy;
    }

    /// <summary>A plain copy of the model in a new directory under <paramref name="parent"/>.</summary>
    public ModelDirectory Copy(string parent)
    {
        string target = System.IO.Path.Combine(parent, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(target);
        foreach (string file in Model.FilePaths)
        {
            File.Copy(file, System.IO.Path.Combine(target, System.IO.Path.GetFileName(file)));
        }

        return new ModelDirectory(target);
    }

    public void Dispose() => _directory.Dispose();
}

/// <summary>
/// A copy of a model directory per fuzzing thread, in which one file at a time is replaced by a mutated version: cases
/// on different threads never see each other's files. A replaced file is put back only when a case replaces another.
/// </summary>
public sealed class ScratchModels(ModelDirectory original, string parent)
{
    private readonly ThreadLocal<(ModelDirectory Copy, string? Dirty)> _copies = new(() =>
    {
        string target = System.IO.Path.Combine(parent, $"scratch-{Environment.CurrentManagedThreadId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(target);
        foreach (string file in original.FilePaths)
        {
            File.Copy(file, System.IO.Path.Combine(target, System.IO.Path.GetFileName(file)));
        }

        return (new ModelDirectory(target), null);
    });

    /// <summary>Runs <paramref name="use"/> on this thread's copy with <paramref name="fileName"/> holding <paramref name="bytes"/>.</summary>
    public void With(string fileName, byte[] bytes, Action<ModelDirectory> use)
    {
        var (copy, dirty) = _copies.Value;
        if (dirty is not null && dirty != fileName)
        {
            File.Copy(System.IO.Path.Combine(original.Path, dirty), System.IO.Path.Combine(copy.Path, dirty), overwrite: true);
        }

        _copies.Value = (copy, fileName);
        File.WriteAllBytes(System.IO.Path.Combine(copy.Path, fileName), bytes);
        use(copy);
    }
}
