namespace MiniOmni.SK.Tests;

/// <summary>Paths into the golden tiny-a fixture copied beside the test assembly.</summary>
internal static class Fixture
{
    public static string Root { get; } = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tiny-a");

    public static string Checkpoint => Path.Combine(Root, "checkpoint");

    public static string Tokenizer => Path.Combine(Checkpoint, "tokenizer.json");

    public static string Whisper => Path.Combine(Root, "whisper", "whisper.pt");

    public static string Snac => Path.Combine(Root, "snac");

    public static string Expected(string name) => Path.Combine(Root, "expected", name);

    public static string Question => Path.Combine(Root, "question.wav");

    /// <summary>Feature frames of question.wav (the manifest's "leng").</summary>
    public const int Leng = 60;

    /// <summary>Small audio files made for the decoder tests (see Fixtures/audio/README.md).</summary>
    public static string Audio(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "audio", name);

    public static float[] ReadFloats(string expectedName)
    {
        byte[] bytes = File.ReadAllBytes(Expected(expectedName));
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    /// <summary>A fresh directory under the system temp folder, deleted when disposed.</summary>
    public static TemporaryDirectory CreateTemporaryDirectory() => new();

    public sealed class TemporaryDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("miniomni-test-").FullName;

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
                // A memory-mapped file may still be closing on some platforms; the temp folder is cleaned eventually.
            }
        }
    }
}
