using System.IO.Compression;
using System.Text;

namespace MiniOmni.SK.Tests;

/// <summary>How a copy of the fixture's checkpoint holds its output head.</summary>
public enum HeadForm
{
    /// <summary>As torch.save writes a tied model: <c>lm_head.weight</c> and <c>transformer.wte.weight</c> over one storage.</summary>
    SharedStorage,

    /// <summary>No <c>lm_head.weight</c> at all.</summary>
    Absent,

    /// <summary>Untied, with <c>lm_head.weight</c> a separate storage holding a copy of the embedding table.</summary>
    EqualCopy,
}

/// <summary>Copies of the fixture's Mini-Omni checkpoint whose head is tied to the embeddings, in the forms a real release may take.</summary>
public static class TiedCheckpoints
{
    // In the fixture's pickle, lm_head.weight lives in storage "3" and transformer.wte.weight in storage "4".
    private const string HeadStorage = "3";
    private const string EmbeddingStorage = "4";

    /// <summary>
    /// Writes a copy of the fixture checkpoint into <paramref name="directory"/> with its head in <paramref name="form"/>;
    /// <paramref name="config"/> rewrites model_config.yaml (default: the fixture's with <c>tie_word_embeddings</c> set for tied forms).
    /// </summary>
    public static string Write(string directory, HeadForm form, Func<string, string>? config = null)
    {
        Directory.CreateDirectory(directory);
        foreach (string file in Directory.GetFiles(Fixture.Checkpoint).Where(f => Path.GetFileName(f) != "lit_model.pth"))
        {
            File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        }

        string configPath = Path.Combine(directory, "model_config.yaml");
        string text = File.ReadAllText(configPath);
        text = config?.Invoke(text) ?? (form == HeadForm.EqualCopy ? text : text.Replace("tie_word_embeddings: false", "tie_word_embeddings: true", StringComparison.Ordinal));
        File.WriteAllText(configPath, text);

        using var source = ZipFile.OpenRead(Path.Combine(Fixture.Checkpoint, "lit_model.pth"));
        using var target = ZipFile.Open(Path.Combine(directory, "lit_model.pth"), ZipArchiveMode.Create);
        string prefix = source.Entries.First(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)).FullName[..^"data.pkl".Length];
        byte[] embeddings = Read(source.GetEntry(prefix + "data/" + EmbeddingStorage)!);
        foreach (var entry in source.Entries)
        {
            byte[] data = Read(entry);
            if (entry.FullName == prefix + "data.pkl")
            {
                data = form switch
                {
                    HeadForm.SharedStorage => PointHeadAtEmbeddingStorage(data),
                    HeadForm.Absent => Replace(data, "lm_head.weight", "lm_head.wXight"),
                    _ => data,
                };
            }
            else if (entry.FullName == prefix + "data/" + HeadStorage)
            {
                if (form != HeadForm.EqualCopy)
                {
                    continue; // one storage for both keys, or no head at all
                }

                data = embeddings;
            }

            using var stream = target.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
            stream.Write(data);
        }

        return directory;
    }

    // The storage key follows the tensor's name in the pickle as BINUNICODE "3"; a tied save names "4" there too.
    private static byte[] PointHeadAtEmbeddingStorage(byte[] pickle)
    {
        int name = pickle.AsSpan().IndexOf("lm_head.weight"u8);
        byte[] key = [(byte)'X', 1, 0, 0, 0, (byte)HeadStorage[0]];
        int at = name + pickle.AsSpan(name).IndexOf(key);
        byte[] copy = [.. pickle];
        copy[at + 5] = (byte)EmbeddingStorage[0];
        return copy;
    }

    private static byte[] Replace(byte[] pickle, string from, string to)
    {
        byte[] copy = [.. pickle];
        int at = copy.AsSpan().IndexOf(Encoding.UTF8.GetBytes(from));
        Encoding.UTF8.GetBytes(to).CopyTo(copy, at);
        return copy;
    }

    private static byte[] Read(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
