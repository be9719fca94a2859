using NEbml.Core;

namespace MiniOmni.SK.Audio.Tests;

/// <summary>
/// Only the third-party decoders' refusals (NEbml, NLayer, Concentus) become an <see cref="AudioFormatException"/>: an
/// exception raised in MiniOmni.SK's own code is a bug and propagates as itself.
/// </summary>
public sealed class DecoderFaultsTests
{
    [Fact]
    public void AnExceptionRaisedInsideNEbmlIsItsOwn()
    {
        // A byte that begins no valid EBML ID.
        var error = Record.Exception(() => new EbmlReader(new MemoryStream([0x00, 0x00, 0x00, 0x00]), 4).ReadNext());

        Assert.NotNull(error);
        Assert.True(DecoderFaults.RaisedInside(error, typeof(EbmlReader).Assembly), $"{error.GetType().Name} from {error.StackTrace}");
    }

    [Fact]
    public void AnExceptionRaisedInOurOwnCodeIsNot()
    {
        var error = Record.Exception(OurCode);

        Assert.NotNull(error);
        Assert.True(DecoderFaults.IsDecoderFault(error));
        Assert.False(DecoderFaults.RaisedInside(error, typeof(EbmlReader).Assembly));
    }

    private static void OurCode() => throw new InvalidOperationException("a bug of ours");
}
