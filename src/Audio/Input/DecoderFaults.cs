namespace MiniOmni.SK.Audio;

/// <summary>
/// Which exceptions from the managed third-party decoders (NLayer for MP3, Concentus for Opus) mean "this coded data is
/// damaged". Both are ports of C decoders that trust their input's internal offsets, so a bit flip surfaces as an index
/// or argument error from inside them; being managed code, nothing is left corrupted, and the caller gets an
/// <see cref="AudioFormatException"/> naming the input instead of a raw runtime exception.
/// </summary>
internal static class DecoderFaults
{
    /// <summary>True for the exception types a damaged frame or packet raises inside a managed decoder.</summary>
    public static bool IsDecoderFault(Exception exception) => exception
        is IndexOutOfRangeException
        or ArgumentException
        or InvalidOperationException
        or InvalidDataException
        or EndOfStreamException
        or NullReferenceException
        or OverflowException
        or DivideByZeroException
        or ArithmeticException
        or NotSupportedException
        or Concentus.OpusException;
}
