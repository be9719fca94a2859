using System.Text;

namespace MiniOmni.SK;

/// <summary>
/// What one answer said, in order: its text, and how much speech had been sent when each piece of text came. Kept with the
/// answer's conversation item, so that the item can be cut to what the user heard, by the session on barge-in or by the
/// client (<c>conversation.item.truncate</c>), while the answer runs or after it ended. Thread-safe.
/// </summary>
internal sealed class RealtimeSpokenAnswer(int outputSampleRate)
{
    private readonly StringBuilder _text = new();
    private readonly List<(long Samples, int Length)> _textMarks = [];
    private readonly Lock _lock = new();
    private long _audioSamples;

    /// <summary>The rate of the speech sent.</summary>
    public int OutputSampleRate { get; } = outputSampleRate;

    /// <summary>The text so far.</summary>
    public string Text
    {
        get
        {
            lock (_lock)
            {
                return _text.ToString();
            }
        }
    }

    /// <summary>The speech so far, at the output rate.</summary>
    public TimeSpan AudioDuration
    {
        get
        {
            lock (_lock)
            {
                return Duration(_audioSamples);
            }
        }
    }

    /// <summary>Records new text, said after the speech sent so far.</summary>
    public void AddText(string text)
    {
        lock (_lock)
        {
            _text.Append(text);
            _textMarks.Add((_audioSamples, _text.Length));
        }
    }

    /// <summary>Records <paramref name="samples"/> more speech sent.</summary>
    public void AddAudio(int samples)
    {
        lock (_lock)
        {
            _audioSamples += samples;
        }
    }

    /// <summary>
    /// The part of the text the user heard when <paramref name="heard"/> of the speech had played. Mini-Omni writes its text
    /// a few steps ahead of the speech of the same words and finishes it long before the speech ends, so the text written
    /// by that point of the speech overstates what was heard; speech takes about as long per character throughout, so the
    /// share of the text that matches the share of the speech heard is the estimate. It is never more than the text
    /// written by then (nothing can be heard before it is written), and it is cut back to a word boundary.
    /// </summary>
    public string HeardText(TimeSpan heard)
    {
        lock (_lock)
        {
            string text = _text.ToString();
            var total = Duration(_audioSamples);
            if (total <= TimeSpan.Zero || heard <= TimeSpan.Zero)
            {
                return string.Empty;
            }

            if (heard >= total)
            {
                return text.Trim();
            }

            int proportional = (int)Math.Round(text.Length * (heard / total));
            long heardSamples = (long)Math.Round(heard.TotalSeconds * OutputSampleRate);
            int written = 0;
            foreach (var (sentBefore, lengthAfter) in _textMarks)
            {
                if (sentBefore > heardSamples)
                {
                    break;
                }

                written = lengthAfter;
            }

            int length = Math.Min(proportional, written);
            if (length < text.Length && length > 0 && !char.IsWhiteSpace(text[length]))
            {
                int space = text.LastIndexOf(' ', length - 1);
                length = space < 0 ? 0 : space;
            }

            return text[..length].Trim();
        }
    }

    private TimeSpan Duration(long samples) => TimeSpan.FromTicks(samples * TimeSpan.TicksPerSecond / OutputSampleRate);
}
