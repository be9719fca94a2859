using LLama.Native;

namespace MiniOmni.SK.Native;

/// <summary>
/// Makes sure the ggml libraries are loaded before the first call: LLamaSharp binds its native library (and with it
/// the ggml libraries of whichever backend package the application installed) only when asked. Once loaded,
/// <c>ggml-base</c>, <c>ggml-cpu</c> and <c>ggml</c> resolve to those same files by name, on Linux through the
/// loader's soname match and on Windows through the module already in the process.
/// </summary>
internal static class GgmlLibrary
{
    private static readonly Lazy<bool> Loaded = new(() =>
    {
        NativeApi.llama_empty_call();
        return true;
    });

    /// <summary>Loads the native libraries once.</summary>
    public static void EnsureLoaded() => _ = Loaded.Value;
}
