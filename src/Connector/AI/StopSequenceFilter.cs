namespace MiniOmni.SK.AI;

/// <summary>
/// Ends an answer's text at the first of its stop sequences. Text is released as soon as it cannot be the start of one;
/// the stop sequence itself and everything after it are never released. One per answer; not thread-safe.
/// </summary>
internal sealed class StopSequenceFilter(IReadOnlyList<string> stopSequences)
{
    private string _held = "";
    private bool _stopped;

    /// <summary>Adds text; returns what may be shown now, and whether a stop sequence was reached.</summary>
    public (string Visible, bool Stopped) Append(string text)
    {
        if (_stopped)
        {
            return ("", true);
        }

        if (stopSequences.Count == 0)
        {
            return (text, false);
        }

        string candidate = _held + text;
        int stop = stopSequences.Select(s => candidate.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
        if (stop >= 0)
        {
            _stopped = true;
            _held = "";
            return (candidate[..stop], true);
        }

        int keep = stopSequences.Max(s => PartialLength(candidate, s));
        _held = candidate[^keep..];
        return (candidate[..^keep], false);
    }

    /// <summary>The answer ended without a stop sequence: what was held back.</summary>
    public IReadOnlyList<string> Complete()
    {
        string held = _held;
        _held = "";
        return held.Length > 0 && !_stopped ? [held] : [];
    }

    // The longest end of `text` that is a proper start of `stop`.
    private static int PartialLength(string text, string stop)
    {
        for (int length = Math.Min(stop.Length - 1, text.Length); length > 0; length--)
        {
            if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
            {
                return length;
            }
        }

        return 0;
    }
}
