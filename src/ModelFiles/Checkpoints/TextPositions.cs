using System.Text;
using System.Text.Json;
using YamlDotNet.Core;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// Turns where a JSON or YAML reader stopped into the place a <see cref="ModelFileException"/> names: the byte offset in
/// the file, with its line and column. System.Text.Json reports a line and a byte in it (both from 0), YamlDotNet a mark
/// of characters (line and column from 1, an index from 0); both become a byte offset from the file's start.
/// </summary>
internal static class TextPositions
{
    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>
    /// Parses <paramref name="json"/> (a UTF-8 byte-order mark is skipped, as a stream read would). Invalid JSON is a
    /// <see cref="ModelFileException"/> at the byte where the reader stopped; <paramref name="fileOffset"/> is where the
    /// JSON starts in the file (a safetensors header starts at byte 8; its line and column are then left out).
    /// </summary>
    public static JsonDocument ParseJson(string path, ReadOnlyMemory<byte> json, string what, long fileOffset = 0)
    {
        int bom = json.Span.StartsWith(Utf8Bom) ? Utf8Bom.Length : 0;
        try
        {
            return JsonDocument.Parse(json[bom..]);
        }
        catch (JsonException e)
        {
            long offset = Math.Min(json.Length, bom + StartOfLine(json.Span[bom..], e.LineNumber ?? 0) + (e.BytePositionInLine ?? 0));
            throw At(path, json.Span, offset, fileOffset, $"{what} is not valid JSON at byte {fileOffset + offset}: {e.Message}", e);
        }
    }

    /// <summary>The error for a JSON document whose root is not an object (as <paramref name="what"/> is), at the root value's first byte.</summary>
    public static ModelFileException NotAnObject(string path, ReadOnlySpan<byte> json, JsonValueKind kind, string what, long fileOffset = 0)
    {
        int at = json.StartsWith(Utf8Bom) ? Utf8Bom.Length : 0;
        while (at < json.Length && json[at] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
        {
            at++;
        }

        return At(path, json, at, fileOffset, $"a JSON {kind} at byte {fileOffset + at}, not an object ({what} is one).", null);
    }

    /// <summary>
    /// The error for YAMLDotNet's refusal of <paramref name="text"/>, decoded from <paramref name="bytes"/> with
    /// <paramref name="encoding"/> after a byte-order mark of <paramref name="preamble"/> bytes: at the byte of the mark.
    /// </summary>
    public static ModelFileException Yaml(string path, byte[] bytes, string text, Encoding encoding, int preamble, Mark mark, string message, Exception? innerException)
    {
        long index = Math.Clamp(mark.Index, 0, text.Length);
        long offset = preamble + (encoding is UTF8Encoding ? Utf8BytesOf(bytes.AsSpan(preamble), index) : encoding.GetByteCount(text.AsSpan(0, (int)index)));
        return new ModelFileException(path, $"{message} (at byte {offset}, line {mark.Line}, column {mark.Column})", innerException: innerException)
        {
            Offset = Math.Min(offset, bytes.Length),
            Line = mark.Line,
            Column = mark.Column,
        };
    }

    private static ModelFileException At(string path, ReadOnlySpan<byte> json, long offset, long fileOffset, string message, Exception? inner)
    {
        // A line and column help in a file of text; in a binary file's embedded JSON (safetensors) the offset alone is meant.
        if (fileOffset != 0)
        {
            return new ModelFileException(path, message, innerException: inner) { Offset = fileOffset + offset };
        }

        var before = json[..(int)offset];
        int lineStart = before.LastIndexOf((byte)'\n') + 1;
        return new ModelFileException(path, message, innerException: inner)
        {
            Offset = offset,
            Line = before.Count((byte)'\n') + 1,
            Column = offset - lineStart + 1,
        };
    }

    // Where line number `line` (from 0) of `json` begins: System.Text.Json counts lines by their '\n'.
    private static long StartOfLine(ReadOnlySpan<byte> json, long line)
    {
        int at = 0;
        for (long seen = 0; seen < line; seen++)
        {
            int next = json[at..].IndexOf((byte)'\n');
            if (next < 0)
            {
                return json.Length;
            }

            at += next + 1;
        }

        return at;
    }

    // How many bytes of UTF-8 decode to the first `chars` UTF-16 characters, counting as the decoder does: an invalid
    // sequence becomes one replacement character, so the offset stays exact in a damaged file.
    private static long Utf8BytesOf(ReadOnlySpan<byte> utf8, long chars)
    {
        long bytes = 0, decoded = 0;
        while (decoded < chars && bytes < utf8.Length)
        {
            _ = Rune.DecodeFromUtf8(utf8[(int)bytes..], out Rune rune, out int consumed);
            bytes += Math.Max(consumed, 1);
            decoded += rune.Utf16SequenceLength;
        }

        return bytes;
    }
}
