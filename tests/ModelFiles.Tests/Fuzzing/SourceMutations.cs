using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace MiniOmni.SK.ModelFiles.Tests.Fuzzing;

/// <summary>One change to a source file of a conversion, given its bytes.</summary>
public abstract record SourceMutation
{
    public abstract byte[] Apply(byte[] input);

    protected static int Pick(int index, int count) => count == 0 ? 0 : (int)((uint)index % (uint)count);
}

/// <summary>Byte mutations of the whole file.</summary>
public sealed record RawBytes(ByteMutation[] Mutations) : SourceMutation
{
    public override byte[] Apply(byte[] input) => ByteMutations.ApplyAll(Mutations, input);

    public override string ToString() => $"RawBytes({string.Join(", ", Mutations.AsEnumerable())})";
}

/// <summary>Byte mutations of one entry of a zip (the pickle, or a storage), written back with a correct CRC so the reader gets past it.</summary>
public sealed record ZipEntryBytes(int Entry, bool Pickle, ByteMutation[] Mutations) : SourceMutation
{
    public override byte[] Apply(byte[] input) => ZipEdit.Rewrite(input, entries =>
    {
        int index = Pickle ? entries.FindIndex(e => e.Name.EndsWith("data.pkl", StringComparison.Ordinal)) : Pick(Entry, entries.Count);
        if (index >= 0)
        {
            entries[index] = entries[index] with { Data = ByteMutations.ApplyAll(Mutations, entries[index].Data) };
        }
    });

    public override string ToString() => $"ZipEntryBytes({(Pickle ? "data.pkl" : Entry)}, {string.Join(", ", Mutations.AsEnumerable())})";
}

/// <summary>An entry of a zip dropped, duplicated, renamed or given a size it does not have.</summary>
public sealed record ZipEntryChange(int Entry, int Change) : SourceMutation
{
    public override byte[] Apply(byte[] input) => ZipEdit.Rewrite(input, entries =>
    {
        int index = Pick(Entry, entries.Count);
        switch (Pick(Change, 4))
        {
            case 0: entries.RemoveAt(index); break;
            case 1: entries.Add(entries[index]); break;
            case 2: entries[index] = entries[index] with { Name = entries[index].Name + "x" }; break;
            default: entries[index] = entries[index] with { Data = entries[index].Data[..(entries[index].Data.Length / 2)] }; break;
        }
    });
}

/// <summary>A change to one line of a YAML file: a value replaced, the line removed, repeated or swapped with another.</summary>
public sealed record YamlLine(int Line, int Change, int Value) : SourceMutation
{
    public static readonly string[] Values =
    [
        "0", "-1", "1", "2", "-2147483649", "2147483648", "99999999999999999999", "1e400", "-1e-6", ".nan", ".inf", "null", "~", "",
        "true", "false", "yes", "[]", "{}", "[1, [2, [3]]]", "\"x\"", "'", "&a 1", "*a", "!!binary AAAA", "0x10", "1_000", "\uFF11\uFF12",
        "\u0000", "LayerNorm", "RMSNorm", "LLaMAMLP", "mlp", "Gemma", "1.0", "0.5", "\"\\ud800\"",
    ];

    public override byte[] Apply(byte[] input)
    {
        var lines = Encoding.UTF8.GetString(input).Split('\n').ToList();
        int at = Pick(Line, lines.Count);
        string key = lines[at].Split(':')[0];
        switch (Pick(Change, 5))
        {
            case 0: lines[at] = $"{key}: {Values[Pick(Value, Values.Length)]}"; break;
            case 1: lines.RemoveAt(at); break;
            case 2: lines.Insert(at, lines[at]); break;
            case 3: lines[at] = $"{key}: {Values[Pick(Value, Values.Length)]}: {Values[Pick(Value / 3, Values.Length)]}"; break;
            default: (lines[at], lines[Pick(Value, lines.Count)]) = (lines[Pick(Value, lines.Count)], lines[at]); break;
        }

        return Encoding.UTF8.GetBytes(string.Join('\n', lines));
    }
}

/// <summary>A change to one node of a JSON file: replaced by a value of another kind, or removed.</summary>
public sealed record JsonNodeChange(int Node, int Value, bool Remove) : SourceMutation
{
    public static readonly string[] Values =
    [
        "0", "-1", "1", "1e308", "-1e308", "2147483648", "9223372036854775808", "1.5", "\"\"", "\"x\"", "\"80\"", "null", "true", "false",
        "[]", "{}", "[0]", "[4, 2, 1]", "[-1]", "{\"a\": 1}", "\"@@lone-surrogate@@\"", "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}", "{\"content\": \"x\"}", "[\"a\"]",
    ];

    public override byte[] Apply(byte[] input)
    {
        // The header of a safetensors file is JSON behind an 8-byte length; a tokenizer or config is JSON alone.
        bool safetensors = input.Length >= 8 && BinaryPrimitives.ReadInt64LittleEndian(input) is > 0 and var length && length <= input.Length - 8 && input[8] == (byte)'{';
        int headerLength = safetensors ? (int)BinaryPrimitives.ReadInt64LittleEndian(input) : input.Length;
        var root = JsonNode.Parse(input.AsSpan(safetensors ? 8 : 0, headerLength))!;
        var nodes = new List<JsonNode>();
        void Walk(JsonNode node)
        {
            nodes.Add(node);
            switch (node)
            {
                case JsonObject o: foreach (var (_, child) in o.ToList()) { if (child is not null) { Walk(child); } } break;
                case JsonArray a: foreach (var child in a.ToList()) { if (child is not null) { Walk(child); } } break;
            }
        }

        Walk(root);
        var target = nodes[Pick(Node, nodes.Count)];
        var replacement = JsonNode.Parse(Values[Pick(Value, Values.Length)]);
        switch (target.Parent)
        {
            case JsonObject parent:
                string name = target.GetPropertyName();
                if (Remove)
                {
                    parent.Remove(name);
                }
                else
                {
                    parent[name] = replacement;
                }

                break;
            case JsonArray parent:
                int index = target.GetElementIndex();
                if (Remove)
                {
                    parent.RemoveAt(index);
                }
                else
                {
                    parent[index] = replacement;
                }

                break;
            default:
                root = replacement ?? root;
                break;
        }

        // A lone surrogate cannot live in a JsonNode; it goes into the text as the escape a hostile file would hold.
        byte[] json = Encoding.UTF8.GetBytes(root.ToJsonString().Replace("@@lone-surrogate@@", "\\ud800", StringComparison.Ordinal));
        return safetensors ? [.. BitConverter.GetBytes((long)json.Length), .. json, .. input.AsSpan(8 + headerLength)] : json;
    }
}

/// <summary>Generators of source mutations by file kind.</summary>
public static class SourceMutations
{
    public static Gen<SourceMutation> Bytes { get; } = ByteMutations.Some.Select(m => (SourceMutation)new RawBytes(m));

    public static Gen<SourceMutation> Zip { get; } = Gen.OneOf(
        Bytes,
        Gen.Select(Gen.Int, ByteMutations.Some, (e, m) => (SourceMutation)new ZipEntryBytes(e, Pickle: true, m)),
        Gen.Select(Gen.Int, ByteMutations.Some, (e, m) => (SourceMutation)new ZipEntryBytes(e, Pickle: true, m)),
        Gen.Select(Gen.Int, ByteMutations.Some, (e, m) => (SourceMutation)new ZipEntryBytes(e, Pickle: false, m)),
        Gen.Select(Gen.Int, Gen.Int, (e, c) => (SourceMutation)new ZipEntryChange(e, c)));

    public static Gen<SourceMutation> Yaml { get; } = Gen.OneOf(
        Bytes,
        Gen.Select(Gen.Int, Gen.Int, Gen.Int, (l, c, v) => (SourceMutation)new YamlLine(l, c, v)),
        Gen.Select(Gen.Int, Gen.Int, Gen.Int, (l, c, v) => (SourceMutation)new YamlLine(l, c, v)),
        Gen.Select(Gen.Int, Gen.Int, Gen.Int, (l, c, v) => (SourceMutation)new YamlLine(l, c, v)));

    public static Gen<SourceMutation> Json { get; } = Gen.OneOf(
        Bytes,
        Gen.Select(Gen.Int, Gen.Int, Gen.Bool, (n, v, r) => (SourceMutation)new JsonNodeChange(n, v, r)),
        Gen.Select(Gen.Int, Gen.Int, Gen.Bool, (n, v, r) => (SourceMutation)new JsonNodeChange(n, v, r)),
        Gen.Select(Gen.Int, Gen.Int, Gen.Bool, (n, v, r) => (SourceMutation)new JsonNodeChange(n, v, r)));
}

/// <summary>Reads a zip's entries in order and writes them back (stored, with correct CRCs) after a change.</summary>
internal static class ZipEdit
{
    public sealed record Entry(string Name, byte[] Data);

    public static byte[] Rewrite(byte[] zip, Action<List<Entry>> change)
    {
        var entries = new List<Entry>();
        using (var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read))
        {
            foreach (var entry in archive.Entries)
            {
                using var stream = entry.Open();
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                entries.Add(new Entry(entry.FullName, copy.ToArray()));
            }
        }

        change(entries);
        using var output = new MemoryStream();
        using (var archive = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in entries)
            {
                using var stream = archive.CreateEntry(entry.Name, CompressionLevel.NoCompression).Open();
                stream.Write(entry.Data);
            }
        }

        return output.ToArray();
    }
}
