using System.Text;

namespace MiniOmni.SK.AI;

/// <summary>
/// Splits text to read aloud into pieces Mini-Omni speaks one answer each: at sentence ends (<c>. ! ? …</c> and their
/// CJK forms, after closing quotes and brackets, before white space; not after a common abbreviation, an initial or a
/// number's point), at line breaks, and a sentence longer than <see cref="MaxCharacters"/> at its last clause mark or
/// space before the limit. Pieces keep their words in order and lose only the white space between them; a piece with no
/// letter or digit (nothing to say) is left out.
/// </summary>
internal static class SentenceSplitter
{
    /// <summary>The longest piece, in characters: about 100 of Qwen2's tokens of English, well within a read-aloud budget.</summary>
    public const int MaxCharacters = 400;

    private static readonly HashSet<string> Abbreviations = new(StringComparer.OrdinalIgnoreCase)
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "a.m", "p.m", "inc", "ltd", "co", "no", "fig", "approx", "cf", "al",
    };

    /// <summary>The pieces of <paramref name="text"/>, none empty, none longer than <paramref name="maxCharacters"/>.</summary>
    public static IReadOnlyList<string> Split(string text, int maxCharacters = MaxCharacters)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCharacters, 2);
        var pieces = new List<string>();
        foreach (string sentence in Sentences(text))
        {
            pieces.AddRange(Bounded(sentence, maxCharacters));
        }

        return pieces;
    }

    private static IEnumerable<string> Sentences(string text)
    {
        var current = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c is '\n' or '\r')
            {
                if (Flush(current) is { } line)
                {
                    yield return line;
                }

                continue;
            }

            current.Append(c);
            if (c is '。' or '！' or '？')
            {
                if (Flush(current) is { } cjk)
                {
                    yield return cjk;
                }

                continue;
            }

            if (c is not ('.' or '!' or '?' or '…'))
            {
                continue;
            }

            // Closing quotes and brackets belong to the sentence they end.
            while (i + 1 < text.Length && text[i + 1] is '"' or '\'' or ')' or ']' or '”' or '’' or '»')
            {
                current.Append(text[++i]);
            }

            bool atBreak = i + 1 == text.Length || char.IsWhiteSpace(text[i + 1]);
            if (atBreak && !(c == '.' && IsAbbreviation(current)) && Flush(current) is { } sentence)
            {
                yield return sentence;
            }
        }

        if (Flush(current) is { } last)
        {
            yield return last;
        }
    }

    // The word before a final point: a known abbreviation or a single letter (an initial) does not end a sentence.
    private static bool IsAbbreviation(StringBuilder sentence)
    {
        string text = sentence.ToString().TrimEnd('.', '"', '\'', ')', ']', '”', '’', '»');
        int start = text.LastIndexOfAny([' ', '\t', '(', '"']) + 1;
        string word = text[start..];
        return (word.Length == 1 && char.IsLetter(word[0])) || Abbreviations.Contains(word);
    }

    private static IEnumerable<string> Bounded(string sentence, int maxCharacters)
    {
        string rest = sentence;
        while (rest.Length > maxCharacters)
        {
            var window = rest.AsSpan(0, maxCharacters);
            int cut = window.LastIndexOfAny(",;:—–") is int clause and > 0 ? clause + 1
                : window.LastIndexOf(' ') is int space and > 0 ? space + 1
                : maxCharacters;
            if (char.IsHighSurrogate(rest[cut - 1]))
            {
                cut--;
            }

            yield return rest[..cut].Trim();
            rest = rest[cut..].TrimStart();
        }

        if (rest.Length > 0)
        {
            yield return rest;
        }
    }

    private static string? Flush(StringBuilder current)
    {
        string piece = current.ToString().Trim();
        current.Clear();
        return piece.Length > 0 && piece.Any(char.IsLetterOrDigit) ? piece : null;
    }
}
