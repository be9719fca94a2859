using System.Text;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK;

/// <summary>One turn of a realtime conversation, as the session keeps it to render later preambles.</summary>
internal sealed class ConversationEntry(string id, ChatRole role)
{
    /// <summary>The item's id, as the client saw it.</summary>
    public string Id { get; } = id;

    /// <summary>User, assistant or system.</summary>
    public ChatRole Role { get; } = role;

    /// <summary>What was said as text: a typed turn, a spoken turn's transcript, an answer (cut to what was heard).</summary>
    public string? Text { get; set; }

    /// <summary>A spoken user turn: 16 kHz mono.</summary>
    public float[]? Audio { get; init; }

    /// <summary>Whether a response has taken this user turn as its question.</summary>
    public bool Answered { get; set; }

    /// <summary>
    /// OpenAI's item status: <see cref="RealtimeItemStatus.InProgress"/> while an answer is generated,
    /// <see cref="RealtimeItemStatus.Incomplete"/> for an answer cancelled, cut off by its budget, failed or truncated.
    /// </summary>
    public string Status { get; set; } = RealtimeItemStatus.Completed;

    /// <summary>A spoken answer's text and speech as they came, to cut it to what was heard; null for other turns.</summary>
    public RealtimeSpokenAnswer? Speech { get; set; }

    /// <summary>How much of a spoken answer's speech was kept when it was truncated; null when it was not.</summary>
    public TimeSpan? AudioEnd { get; set; }
}

/// <summary>OpenAI's statuses of a conversation item.</summary>
internal static class RealtimeItemStatus
{
    public const string Completed = "completed";
    public const string Incomplete = "incomplete";
    public const string InProgress = "in_progress";
}

/// <summary>
/// The turns of a realtime session, and how they become the text preamble of the next answer. Mini-Omni's released
/// prompts are single-turn: earlier turns (and system instructions) go ahead of the prompt as plain text. Thread-safe.
/// </summary>
internal sealed class RealtimeConversation
{
    /// <summary>How a spoken user turn shows in a preamble when it has no transcript.</summary>
    public const string UntranscribedSpeech = "[speech]";

    private readonly List<ConversationEntry> _entries = [];
    private readonly Lock _lock = new();

    /// <summary>Adds <paramref name="entry"/> as the latest turn.</summary>
    public void Add(ConversationEntry entry)
    {
        lock (_lock)
        {
            _entries.Add(entry);
        }
    }

    /// <summary>The turn whose id is <paramref name="id"/>, if the conversation holds it.</summary>
    public ConversationEntry? Find(string id)
    {
        lock (_lock)
        {
            return _entries.Find(e => e.Id == id);
        }
    }

    /// <summary>Takes <paramref name="entry"/> out of the conversation; false when it was not in it.</summary>
    public bool Remove(ConversationEntry entry)
    {
        lock (_lock)
        {
            return _entries.Remove(entry);
        }
    }

    /// <summary>The id of the turn before <paramref name="entry"/>; null when it is the first (or not in the conversation).</summary>
    public string? PreviousId(ConversationEntry entry)
    {
        lock (_lock)
        {
            int index = _entries.IndexOf(entry);
            return index > 0 ? _entries[index - 1].Id : null;
        }
    }

    /// <summary>Whether the latest user turn waits for an answer.</summary>
    public bool HasQuestion
    {
        get
        {
            lock (_lock)
            {
                return _entries.LastOrDefault(e => e.Role == ChatRole.User) is { Answered: false };
            }
        }
    }

    /// <summary>The latest user turn no response has taken yet, if any, marked as taken.</summary>
    public ConversationEntry? TakeQuestion()
    {
        lock (_lock)
        {
            var question = _entries.LastOrDefault(e => e.Role == ChatRole.User);
            if (question is null || question.Answered)
            {
                return null;
            }

            question.Answered = true;
            return question;
        }
    }

    /// <summary>Sets the text of turn <paramref name="entry"/> (a transcript, a finished or truncated answer).</summary>
    public void SetText(ConversationEntry entry, string? text)
    {
        lock (_lock)
        {
            entry.Text = text;
        }
    }

    /// <summary>
    /// The preamble of an answer to <paramref name="question"/>: the instructions and the system turns, then the turns
    /// before the question as "User: ..." and "Assistant: ..." lines, the oldest left out first beyond
    /// <paramref name="historyBudget"/> characters. Null when there is nothing to say.
    /// </summary>
    public string? RenderPreamble(string? instructions, ConversationEntry question, int historyBudget)
    {
        var system = new List<string>();
        if (!string.IsNullOrWhiteSpace(instructions))
        {
            system.Add(instructions.Trim());
        }

        var turns = new List<string>();
        lock (_lock)
        {
            int end = _entries.IndexOf(question);
            foreach (var entry in _entries.Take(end < 0 ? _entries.Count : end))
            {
                if (entry.Role == ChatRole.System)
                {
                    if (!string.IsNullOrWhiteSpace(entry.Text))
                    {
                        system.Add(entry.Text.Trim());
                    }
                }
                else if (entry.Role == ChatRole.User)
                {
                    turns.Add($"User: {(string.IsNullOrWhiteSpace(entry.Text) ? UntranscribedSpeech : entry.Text.Trim())}");
                }
                else if (!string.IsNullOrWhiteSpace(entry.Text))
                {
                    // An answer cut off before any of it was heard said nothing, and is left out.
                    turns.Add($"Assistant: {entry.Text.Trim()}");
                }
            }
        }

        int kept = turns.Count, used = 0;
        while (kept > 0 && used + turns[kept - 1].Length + 1 <= historyBudget)
        {
            used += turns[--kept].Length + 1;
        }

        var preamble = new StringBuilder();
        foreach (string line in system.Concat(turns.Skip(kept)))
        {
            preamble.Append(line).Append('\n');
        }

        return preamble.Length == 0 ? null : preamble.ToString();
    }
}
