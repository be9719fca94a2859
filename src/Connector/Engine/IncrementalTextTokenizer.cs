using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MiniOmni.SK.Engine;

/// <summary>
/// Tokenizes text that arrives in pieces (a thinker's stream) into exactly the tokens the whole text would have, handing
/// each token out as soon as later text can no longer change it. Qwen2's tokenizer first splits text into pieces with a
/// regular expression (words with their leading space, single digits, runs of punctuation, runs of whitespace) and then
/// applies BPE inside each piece, so a token never crosses a piece's edge. Every piece but the last is decided by the
/// characters already there (the expression looks at most one character past a piece: a letter run stops at a non-letter,
/// whitespace keeps its last space for the word after it); only the last piece can still grow or split differently. So the
/// text up to the last piece's start is final, and its tokens are those of that text alone. As a second guard the final
/// tokens are checked against the tokenization of all the text known so far, and held back if they disagree.
/// Not thread-safe: one per stream.
/// </summary>
internal sealed partial class IncrementalTextTokenizer(Func<string, int[]> tokenize)
{
    private readonly StringBuilder _pending = new();

    /// <summary>Characters taken in so far, final or not.</summary>
    public long CharactersSeen { get; private set; }

    /// <summary>Adds <paramref name="chunk"/> and returns the tokens that became final (possibly none).</summary>
    public int[] Add(string chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        _pending.Append(chunk);
        CharactersSeen += chunk.Length;
        return TakeFinal();
    }

    /// <summary>The text has ended: returns the tokens of whatever was held back.</summary>
    public int[] Finish()
    {
        string rest = _pending.ToString();
        _pending.Clear();
        return rest.Length == 0 ? [] : tokenize(rest);
    }

    private int[] TakeFinal()
    {
        string text = _pending.ToString();
        // A character split between chunks (the high half of a surrogate pair) waits for its other half.
        int known = text.Length > 0 && char.IsHighSurrogate(text[^1]) ? text.Length - 1 : text.Length;
        int cut = LastPieceStart(text.AsSpan(0, known));
        if (cut <= 0)
        {
            return [];
        }

        int[] final = tokenize(text[..cut]);
        if (!tokenize(text[..known]).AsSpan().StartsWith(final))
        {
            // The split disagrees with the tokenization of all the text known: hold it back until the text has ended.
            return [];
        }

        _pending.Remove(0, cut);
        return final;
    }

    /// <summary>Where the last of Qwen2's pre-tokenizer pieces of <paramref name="text"/> starts (0 for one piece or none).</summary>
    internal static int LastPieceStart(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
        {
            return 0;
        }

        string categories = WithBmpStandIns(text);
        int last = 0;
        foreach (var piece in Qwen2Pieces().EnumerateMatches(categories))
        {
            // A piece edge between the halves of a surrogate pair is the stand-in's, not the text's.
            if (piece.Index > 0 && !char.IsLowSurrogate(text[piece.Index]))
            {
                last = piece.Index;
            }
        }

        return last;
    }

    /// <summary>Every piece of <paramref name="text"/>, for tests.</summary>
    internal static IReadOnlyList<string> Pieces(string text)
    {
        var starts = Qwen2Pieces().Matches(WithBmpStandIns(text)).Select(m => m.Index).Where(i => i == 0 || !char.IsLowSurrogate(text[i])).Append(text.Length).ToList();
        return [.. starts.Zip(starts.Skip(1), (start, end) => text[start..end])];
    }

    // .NET's expressions classify UTF-16 units, llama.cpp's classify code points: each surrogate pair becomes two units of
    // its code point's class (a letter, a digit or a symbol), so the pieces' edges fall where llama.cpp puts them. A lone
    // surrogate is a symbol, as llama.cpp reads an invalid sequence.
    private static string WithBmpStandIns(ReadOnlySpan<char> text)
    {
        if (!text.ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            return text.ToString();
        }

        var copy = text.ToArray();
        for (int i = 0; i < copy.Length; i++)
        {
            if (!char.IsSurrogate(copy[i]))
            {
                continue;
            }

            if (char.IsHighSurrogate(copy[i]) && i + 1 < copy.Length && char.IsLowSurrogate(copy[i + 1]))
            {
                char standIn = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(copy[i], copy[i + 1])) switch
                {
                    UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                        or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => 'a',
                    UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => '0',
                    _ => '~',
                };
                copy[i] = copy[i + 1] = standIn;
                i++;
            }
            else
            {
                copy[i] = '~';
            }
        }

        return new string(copy);
    }

    // Qwen2's pre-tokenizer (tokenizer.json's Split, llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2).
    [GeneratedRegex(@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Qwen2Pieces();
}
