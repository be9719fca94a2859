namespace MiniOmni.SK.Audio.Tests;

/// <summary>Paths of the files copied next to the test assembly.</summary>
internal static class Fixtures
{
    public static string TinyA(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Fixtures", "tiny-a", .. parts]);

    public static string Audio(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "audio", name);

    public static float[] ReadFloat32(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var values = new float[bytes.Length / sizeof(float)];
        Buffer.BlockCopy(bytes, 0, values, 0, values.Length * sizeof(float));
        return values;
    }
}
