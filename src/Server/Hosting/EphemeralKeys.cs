using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>
/// Short-lived keys (<c>ek_...</c>) for browsers: issued to a caller that holds the real key, good for opening one
/// realtime session before they expire, and held only as SHA-256 digests. Time comes from <see cref="TimeProvider"/>.
/// </summary>
public sealed class EphemeralKeys(TimeProvider time, IOptions<MiniOmniServerOptions> options)
{
    /// <summary>What every ephemeral key starts with.</summary>
    public const string Prefix = "ek_";

    /// <summary>The shortest and longest lifetimes a request may ask for, in seconds (OpenAI's range).</summary>
    public const int MinSeconds = 10, MaxSeconds = 7200;

    private readonly ConcurrentDictionary<string, DateTimeOffset> _outstanding = new(StringComparer.Ordinal);

    /// <summary>Keys issued and neither used nor expired.</summary>
    public int Outstanding
    {
        get
        {
            Prune();
            return _outstanding.Count;
        }
    }

    /// <summary>Issues a key that expires <paramref name="lifetime"/> from now; null when <see cref="BrowserAccessOptions.MaxEphemeralKeys"/> are outstanding.</summary>
    public (string Key, DateTimeOffset ExpiresAt)? Issue(TimeSpan lifetime)
    {
        Prune();
        if (_outstanding.Count >= options.Value.Browsers.MaxEphemeralKeys)
        {
            return null;
        }

        string key = Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var expiresAt = time.GetUtcNow() + lifetime;
        _outstanding[Digest(key)] = expiresAt;
        return (key, expiresAt);
    }

    /// <summary>Uses <paramref name="key"/> up: true once, for a key issued here that has not expired; false ever after.</summary>
    public bool TryRedeem(string key)
    {
        if (!key.StartsWith(Prefix, StringComparison.Ordinal) || !_outstanding.TryRemove(Digest(key), out var expiresAt))
        {
            return false;
        }

        return time.GetUtcNow() < expiresAt;
    }

    private void Prune()
    {
        var now = time.GetUtcNow();
        foreach (var (digest, expiresAt) in _outstanding)
        {
            if (now >= expiresAt)
            {
                _outstanding.TryRemove(digest, out _);
            }
        }
    }

    // Digests of random keys: a lookup's timing reveals nothing usable, and a memory dump holds no live key.
    private static string Digest(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
