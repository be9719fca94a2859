using System.Diagnostics;
using System.Reflection;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// Tells a third-party reader's refusal of a damaged file from a bug in MiniOmni.SK's own code: only the former may be
/// relabelled as a <see cref="ModelFileException"/>. An exception counts as the library's when the innermost frame of its
/// stack trace outside the .NET libraries belongs to the library (the .NET libraries' frames above it are what the
/// library called); one raised by MiniOmni.SK's own code, including a callback the library invoked, is not.
/// </summary>
internal static class ThirdPartyFaults
{
    /// <summary>True when <paramref name="exception"/> was raised inside <paramref name="library"/> (or a .NET library it called).</summary>
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
