using System.Diagnostics;
using System.Reflection;

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

    /// <summary>
    /// True when <paramref name="exception"/> was raised inside <paramref name="library"/>: the innermost frame of its stack
    /// trace outside the .NET libraries belongs to it. What MiniOmni.SK's own code raises (a callback the library invoked
    /// included) is a bug, never relabelled as a damaged input.
    /// </summary>
    public static bool RaisedInside(Exception exception, Assembly library)
    {
        foreach (var frame in new StackTrace(exception, fNeedFileInfo: false).GetFrames())
        {
            var assembly = frame.GetMethod()?.DeclaringType?.Assembly;
            if (assembly is null || IsDotNetLibrary(assembly))
            {
                continue;
            }

            return assembly == library;
        }

        return false;
    }

    private static bool IsDotNetLibrary(Assembly assembly) =>
        assembly.GetName().Name is "System.Private.CoreLib" or "netstandard" or "mscorlib" || assembly.GetName().Name?.StartsWith("System.", StringComparison.Ordinal) == true;
}
