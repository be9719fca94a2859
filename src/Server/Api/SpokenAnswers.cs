using System.Collections.Concurrent;

namespace MiniOmni.SK.Server.Api;

/// <summary>
/// The transcripts of spoken chat answers, by their <c>audio.id</c>, until their <c>expires_at</c>: OpenAI's SDKs continue
/// a spoken conversation by sending back only <c>{"audio": {"id": ...}}</c> for the assistant's turn, and the model
/// must still read what it said. At most <see cref="Capacity"/> are kept, the oldest dropped first.
/// </summary>
internal sealed class SpokenAnswers(TimeProvider time)
{
    /// <summary>How long an answer is kept (and the <c>expires_at</c> it is given).</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);

    /// <summary>The most answers kept.</summary>
    public const int Capacity = 4096;

    private readonly ConcurrentDictionary<string, (string Transcript, DateTimeOffset ExpiresAt)> _answers = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _order = new();

    /// <summary>When an answer given now expires.</summary>
    public DateTimeOffset ExpiryOfNew => time.GetUtcNow() + Lifetime;

    /// <summary>Keeps <paramref name="transcript"/> under <paramref name="id"/> until <paramref name="expiresAt"/>.</summary>
    public void Keep(string id, string transcript, DateTimeOffset expiresAt)
    {
        _answers[id] = (transcript, expiresAt);
        _order.Enqueue(id);
        while (_answers.Count > Capacity && _order.TryDequeue(out string? oldest))
        {
            _answers.TryRemove(oldest, out _);
        }
    }

    /// <summary>The transcript of answer <paramref name="id"/>, or null when it is unknown or has expired.</summary>
    public string? Find(string id)
    {
        if (!_answers.TryGetValue(id, out var answer))
        {
            return null;
        }

        if (time.GetUtcNow() >= answer.ExpiresAt)
        {
            _answers.TryRemove(id, out _);
            return null;
        }

        return answer.Transcript;
    }
}
