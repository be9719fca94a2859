using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.AI;

/// <summary>
/// Spoken memory for chats: an earlier user turn that is only audio reaches the model as its words, transcribed with the
/// ASR task, instead of as a bare <c>[spoken]</c>. Transcripts are cached by the audio's content hash, so each spoken turn
/// is transcribed once however often the conversation is sent again. The assistant's own turns keep their text.
/// </summary>
internal sealed class SpokenMemory(IMiniOmniEngine engine, TranscriptCache cache, int transcriptMaxTokens, ILogger logger)
{
    private long _transcriptions;

    /// <summary>Transcriptions run so far (cache misses), for tests and diagnostics.</summary>
    public long Transcriptions => Interlocked.Read(ref _transcriptions);

    /// <summary>
    /// The conversation with every spoken user turn before the question (the last user message) replaced by a text turn of
    /// its transcript. Messages that are not spoken user turns, and the question itself, are returned as they are.
    /// </summary>
    public async Task<IReadOnlyList<ChatMessage>> RecallAsync(IReadOnlyList<ChatMessage> messages, EncoderMode encoderMode, CancellationToken cancellationToken)
    {
        int question = -1;
        for (int i = messages.Count - 1; i >= 0 && question < 0; i--)
        {
            question = messages[i].Role == ChatRole.User ? i : -1;
        }

        List<ChatMessage>? recalled = null;
        for (int i = 0; i < question; i++)
        {
            var message = messages[i];
            if (message.Role != ChatRole.User || message.Contents.OfType<TextContent>().Any(t => !string.IsNullOrWhiteSpace(t.Text)))
            {
                continue;
            }

            var audio = message.Contents.FirstOrDefault(c => c is DataContent data && data.HasTopLevelMediaType("audio") || c is UriContent uri && uri.HasTopLevelMediaType("audio"));
            if (audio is null)
            {
                continue;
            }

            string transcript = await TranscriptOfAsync(audio, i, encoderMode, cancellationToken).ConfigureAwait(false);
            if (transcript.Length == 0)
            {
                continue; // heard nothing: the renderer's [spoken] still says a turn was there
            }

            recalled ??= [.. messages];
            recalled[i] = new ChatMessage(ChatRole.User, [new TextContent(transcript) { RawRepresentation = audio }])
            {
                AuthorName = message.AuthorName,
                MessageId = message.MessageId,
                CreatedAt = message.CreatedAt,
            };
        }

        return recalled ?? messages;
    }

    private async Task<string> TranscriptOfAsync(AIContent audio, int index, EncoderMode encoderMode, CancellationToken cancellationToken)
    {
        string key = await KeyOfAsync(audio, encoderMode, cancellationToken).ConfigureAwait(false);
        if (cache.TryGet(key, out string? known))
        {
            return known;
        }

        float[] samples;
        try
        {
            var window = new AudioInputOptions { TruncateToWindow = true };
            samples = audio switch
            {
                DataContent data => AudioDecoder.Decode(data.Data, data.MediaType, window, inputName: data.Name ?? $"the audio of earlier user message {index}"),
                UriContent uri => AudioDecoder.DecodeFile(LocalPath(uri), window),
                _ => throw new System.Diagnostics.UnreachableException(),
            };
        }
        catch (Exception e) when (e is AudioFormatException or NotSupportedException or IOException)
        {
            throw new ArgumentException($"The earlier user message {index} is spoken, and its audio could not be heard to remember it: {e.Message} (turn spoken memory off with MiniOmniChatClientOptions.TranscribeSpokenTurns to send it as [spoken]).", e);
        }

        var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = samples, MaxTokens = transcriptMaxTokens, EncoderMode = encoderMode };
        var text = new StringBuilder();
        Interlocked.Increment(ref _transcriptions);
        await foreach (var item in engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (item is TextDelta delta)
            {
                text.Append(delta.Text);
            }
        }

        string transcript = text.ToString().Trim();
        cache.Add(key, transcript);
        logger.LogDebug("Transcribed earlier spoken turn {Index}: {Characters} characters.", index, transcript.Length);
        return transcript;
    }

    // The audio's bytes and media type, and how it is encoded for the ASR task: what its transcript depends on.
    private static async Task<string> KeyOfAsync(AIContent audio, EncoderMode encoderMode, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"{encoderMode}\n{(audio as DataContent)?.MediaType}\n"));
        if (audio is DataContent data)
        {
            hash.AppendData(data.Data.Span);
        }
        else
        {
            await using var file = File.OpenRead(LocalPath((UriContent)audio));
            var buffer = new byte[81920];
            for (int read; (read = await file.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0;)
            {
                hash.AppendData(buffer, 0, read);
            }
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    private static string LocalPath(UriContent uri) => uri.Uri.IsFile
        ? uri.Uri.LocalPath
        : throw new NotSupportedException($"MiniOmni reads audio from local files only; {uri.Uri} is not one.");
}

/// <summary>
/// Transcripts by content hash, least recently used first out, bounded both in entries and in bytes (the transcripts'
/// UTF-16 size plus the keys'). Thread-safe.
/// </summary>
internal sealed class TranscriptCache(int maxEntries, long maxBytes)
{
    private readonly Dictionary<string, LinkedListNode<(string Key, string Transcript)>> _entries = [];
    private readonly LinkedList<(string Key, string Transcript)> _recent = [];
    private readonly Lock _lock = new();
    private long _bytes;

    /// <summary>Transcripts held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Bytes held.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    public bool TryGet(string key, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? transcript)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                _recent.Remove(node);
                _recent.AddFirst(node);
                transcript = node.Value.Transcript;
                return true;
            }
        }

        transcript = null;
        return false;
    }

    public void Add(string key, string transcript)
    {
        long size = SizeOf(key, transcript);
        if (maxEntries <= 0 || size > maxBytes)
        {
            return;
        }

        lock (_lock)
        {
            if (_entries.Remove(key, out var old))
            {
                _recent.Remove(old);
                _bytes -= SizeOf(old.Value.Key, old.Value.Transcript);
            }

            while (_entries.Count >= maxEntries || _bytes + size > maxBytes)
            {
                var last = _recent.Last!;
                _recent.RemoveLast();
                _entries.Remove(last.Value.Key);
                _bytes -= SizeOf(last.Value.Key, last.Value.Transcript);
            }

            _entries[key] = _recent.AddFirst((key, transcript));
            _bytes += size;
        }
    }

    private static long SizeOf(string key, string transcript) => 2L * (key.Length + transcript.Length);
}
