using System.Text;
using MiniOmni.SK.ModelFiles.Checkpoints;

namespace MiniOmni.SK.ModelFiles.Tests.Checkpoints;

/// <summary>
/// Only a third-party reader's refusal becomes a <see cref="ModelFileException"/>, with the original inside: an exception
/// raised in MiniOmni.SK's own code is a bug and must propagate as itself, never pass as a clean error of a damaged file.
/// </summary>
public sealed class RelabellingTests
{
    private static readonly System.Reflection.Assembly Razorvine = typeof(Razorvine.Pickle.Unpickler).Assembly;

    [Fact]
    public void AnExceptionRaisedInsideTheUnpicklerIsItsOwn()
    {
        // An unknown opcode: Razorvine's interpreter refuses it.
        var error = Record.Exception(() => new Razorvine.Pickle.Unpickler().loads([0xFF]));

        Assert.NotNull(error);
        Assert.True(ThirdPartyFaults.RaisedInside(error, Razorvine), $"{error.GetType().Name} from {error.StackTrace}");
    }

    [Fact]
    public void AnExceptionRaisedInOurOwnCodeIsNot()
    {
        var error = Record.Exception(() => OurCode());

        Assert.NotNull(error);
        Assert.False(ThirdPartyFaults.RaisedInside(error, Razorvine));
    }

    [Fact]
    public void AnExceptionRaisedInOurCallbackThatTheLibraryCalledIsNot()
    {
        // The library's frames are below ours on the stack: the innermost outside .NET's libraries is ours.
        var error = Record.Exception(() => Enumerable.Range(0, 1).Select(_ => OurCode()).ToList());

        Assert.NotNull(error);
        Assert.False(ThirdPartyFaults.RaisedInside(error, typeof(Enumerable).Assembly));
        Assert.False(ThirdPartyFaults.RaisedInside(error, Razorvine));
    }

    [Fact]
    public void ALoneSurrogateInASafetensorsHeaderNamesTheEntryAndKeepsTheOriginal()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        string path = Path.Combine(directory.Path, "lone.safetensors");
        byte[] header = Encoding.UTF8.GetBytes("{\"w\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header, 0, 0, 0, 0]);

        var error = Assert.Throws<ModelFileException>(() => SafetensorsCheckpoint.Open(path));

        Assert.Equal(path, error.FilePath);
        Assert.Equal("the name of header entry 0", error.Key);
        Assert.IsType<InvalidOperationException>(error.InnerException);
    }

    private static int OurCode() => throw new InvalidOperationException("a bug of ours");
}
