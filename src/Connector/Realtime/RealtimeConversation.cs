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

    /// <summary>Whether a response has taken this user turn as its question, or this function result to continue after.</summary>
    public bool Answered { get; set; }

    /// <summary>An assistant turn that calls a function (the model's, or one the client added).</summary>
    public FunctionCallContent? FunctionCall { get; init; }

    /// <summary>A tool turn: a function's result, which the next response continues after.</summary>
    public FunctionResultContent? FunctionResult { get; init; }

    /// <summary>Whether the turn is a function call or its result.</summary>
    public bool IsToolExchange => FunctionCall is not null || FunctionResult is not null;

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
    // The oldest turn the preambles show (null: the first); it moves only when the history outgrows its budget.
    private ConversationEntry? _historyStart;

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

    /// <summary>Whether <paramref name="entry"/> is one of the turns (an answer kept out of the conversation is not).</summary>
    public bool Contains(ConversationEntry entry)
    {
        lock (_lock)
        {
            return _entries.Contains(entry);
        }
    }

    /// <summary>Whether an answer is being generated (its item is in progress): its text is not final yet.</summary>
    public bool HasAnswerInProgress
    {
        get
        {
            lock (_lock)
            {
                return _entries.Exists(e => e.Status == RealtimeItemStatus.InProgress);
            }
        }
    }

    /// <summary>Whether the latest user turn waits for an answer, or function results after it wait for the answer to go on.</summary>
    public bool HasQuestion
    {
        get
        {
            lock (_lock)
            {
                int at = _entries.FindLastIndex(e => e.Role == ChatRole.User);
                return at >= 0 && (!_entries[at].Answered || UnansweredResults(at).Any());
            }
        }
    }

    /// <summary>The latest user turn no response has taken yet, if any, marked as taken.</summary>
    public ConversationEntry? TakeQuestion() => TakeQuestion(out _);

    /// <summary>
    /// The latest user turn no response has taken yet, marked as taken; or, when function results came after it that no
    /// response has continued after, that turn again (<paramref name="afterToolResults"/>), with the results marked as
    /// taken: the answer goes on with them, as a chat client's function-invocation loop asks the same question again.
    /// </summary>
    public ConversationEntry? TakeQuestion(out bool afterToolResults)
    {
        afterToolResults = false;
        lock (_lock)
        {
            int at = _entries.FindLastIndex(e => e.Role == ChatRole.User);
            if (at < 0)
            {
                return null;
            }

            var question = _entries[at];
            if (!question.Answered)
            {
                question.Answered = true;
                return question;
            }

            var results = UnansweredResults(at).ToList();
            if (results.Count == 0)
            {
                return null;
            }

            results.ForEach(r => r.Answered = true);
            afterToolResults = true;
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
    /// The turns a thinker answering <paramref name="question"/> sees: those before it, then the tool exchanges after it
    /// (calls made and their results, when the answer continues after them).
    /// </summary>
    public (IReadOnlyList<ConversationEntry> Before, IReadOnlyList<ConversationEntry> ToolExchangesAfter) TurnsAround(ConversationEntry question)
    {
        lock (_lock)
        {
            int at = _entries.IndexOf(question);
            return at < 0
                ? ([.. _entries], [])
                : ([.. _entries.Take(at)], [.. _entries.Skip(at + 1).Where(e => e.IsToolExchange)]);
        }
    }

    /// <summary>
    /// The preamble of an answer to <paramref name="question"/>: the instructions and the system turns, then the turns
    /// before the question as "User: ..." and "Assistant: ..." lines. Beyond <paramref name="historyBudget"/> characters
    /// the oldest turns are left out in one chunk, down to half the budget, and the history then starts there until it
    /// outgrows the budget again: so each preamble extends the one before, and the engine's prompt cache decodes only
    /// the new turns, rather than every turn shifting the history by one and decoding all of it again. Function calls and
    /// results are written in Qwen2's tool format (<c>&lt;tool_call&gt;</c>, "Tool: &lt;tool_response&gt;"); with
    /// <paramref name="withToolExchange"/> the calls and results after the question follow the history, whatever the
    /// budget, as the chat client writes its tool exchange.
    /// Null when there is nothing to say. A null <paramref name="question"/> renders every turn so far: the preamble of a
    /// user turn still to come.
    /// </summary>
    public string? RenderPreamble(string? instructions, ConversationEntry? question, int historyBudget, bool withToolExchange = false)
    {
        var system = new List<string>();
        if (!string.IsNullOrWhiteSpace(instructions))
        {
            system.Add(instructions.Trim());
        }

        var turns = new List<(string Line, ConversationEntry Entry)>();
        lock (_lock)
        {
            int end = question is null ? -1 : _entries.IndexOf(question);
            foreach (var entry in _entries.Take(end < 0 ? _entries.Count : end))
            {
                if (entry.Role == ChatRole.System)
                {
                    if (!string.IsNullOrWhiteSpace(entry.Text))
                    {
                        system.Add(entry.Text.Trim());
                    }
                }
                else if (entry.IsToolExchange)
                {
                    turns.Add((ToolExchangeLine(entry), entry));
                }
                else if (entry.Role == ChatRole.User)
                {
                    turns.Add(($"User: {(string.IsNullOrWhiteSpace(entry.Text) ? UntranscribedSpeech : entry.Text.Trim())}", entry));
                }
                else if (!string.IsNullOrWhiteSpace(entry.Text))
                {
                    // An answer cut off before any of it was heard said nothing, and is left out.
                    turns.Add(($"Assistant: {entry.Text.Trim()}", entry));
                }
            }

            int startIndex = _historyStart is null ? 0 : _entries.IndexOf(_historyStart);
            int first = turns.FindIndex(turn => _entries.IndexOf(turn.Entry) >= startIndex);
            first = first < 0 ? turns.Count : first;
            int used = turns.Skip(first).Sum(turn => turn.Line.Length + 1);
            if (used > historyBudget)
            {
                while (first < turns.Count && used > historyBudget / 2)
                {
                    used -= turns[first++].Line.Length + 1;
                }

                // Every turn left out: the next history starts with the question's own turn.
                _historyStart = first < turns.Count ? turns[first].Entry : end >= 0 ? question : null;
            }

            turns.RemoveRange(0, first);
        }

        var exchange = new List<string>();
        if (withToolExchange && question is not null)
        {
            lock (_lock)
            {
                int start = _entries.IndexOf(question) + 1;
                foreach (var entry in _entries.Skip(start))
                {
                    if (entry.IsToolExchange)
                    {
                        exchange.Add(ToolExchangeLine(entry));
                    }
                    else if (entry.Role == ChatRole.Assistant && !string.IsNullOrWhiteSpace(entry.Text))
                    {
                        exchange.Add($"Assistant: {entry.Text.Trim()}");
                    }
                }
            }
        }

        var preamble = new StringBuilder();
        foreach (string line in system.Concat(turns.Select(turn => turn.Line)).Concat(exchange))
        {
            preamble.Append(line).Append('\n');
        }

        return preamble.Length == 0 ? null : preamble.ToString();
    }

    // A call as the model writes one, a result as the chat client writes it, each on an "Assistant:" or "Tool:" line.
    private static string ToolExchangeLine(ConversationEntry entry) => entry.FunctionCall is { } call
        ? $"Assistant: {ConversationText.Of(new ChatMessage(ChatRole.Assistant, [call]))}"
        : $"Tool: {ConversationText.Of(new ChatMessage(ChatRole.Tool, [entry.FunctionResult!]))}";

    // The function results after the user turn at <paramref name="questionIndex"/> that no response has continued after.
    private IEnumerable<ConversationEntry> UnansweredResults(int questionIndex) =>
        _entries.Skip(questionIndex + 1).Where(e => e.FunctionResult is not null && !e.Answered);
}
