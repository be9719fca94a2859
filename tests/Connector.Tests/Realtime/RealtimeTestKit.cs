// MEAI's realtime abstractions are experimental (MEAI001); these helpers drive them.
#pragma warning disable MEAI001

using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using Moq;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>A Moq <see cref="IMiniOmniEngine"/> that plays scripted answers and transcriptions and records every request and its token.</summary>
internal sealed class ScriptedEngine
{
    private readonly Queue<Func<MiniOmniRequest, CancellationToken, IAsyncEnumerable<MiniOmniEvent>>> _answers = new();
    private readonly List<(MiniOmniRequest Request, CancellationToken Token)> _calls = [];
    private readonly Lock _lock = new();

    public ScriptedEngine()
    {
        Mock.SetupGet(e => e.ModelId).Returns("scripted");
        Mock.SetupGet(e => e.MaxPositions).Returns(2048);
        Mock.Setup(e => e.GenerateAsync(It.IsAny<MiniOmniRequest>(), It.IsAny<CancellationToken>()))
            .Returns((MiniOmniRequest request, CancellationToken token) =>
            {
                Func<MiniOmniRequest, CancellationToken, IAsyncEnumerable<MiniOmniEvent>>? script = null;
                lock (_lock)
                {
                    _calls.Add((request, token));
                    if (request.Task != MiniOmniTask.Asr && _answers.Count > 0)
                    {
                        script = _answers.Dequeue();
                    }
                }

                if (_transcriptHold is { } hold && request.Transcription is { } transcription && transcription.TryTake())
                {
                    _ = PlayTranscript(transcription, hold);
                }

                return request.Task == MiniOmniTask.Asr ? Play(token, [new TextDelta(" what time is it"), Completed(20, 6)])
                    : script is not null ? script(request, token)
                    : DefaultAnswer(token);
            });
    }

    public Mock<IMiniOmniEngine> Mock { get; } = new(MockBehavior.Strict);

    public IMiniOmniEngine Object => Mock.Object;

    /// <summary>
    /// Gives the engine a prompt cache (<see cref="IPromptCacheOwners"/>) whose decodes ahead run <paramref name="prefill"/>
    /// (completed at once by default) and are recorded; call before the engine is first used.
    /// </summary>
    public void WithPromptCache(Func<string, CancellationToken, Task>? prefill = null)
    {
        var cache = Mock.As<IPromptCacheOwners>();
        cache.Setup(c => c.ForgetAsync(It.IsAny<object>())).ReturnsAsync(0);
        cache.Setup(c => c.PrefillPreambleAsync(It.IsAny<string>(), It.IsAny<object>(), It.IsAny<CancellationToken>()))
            .Returns((string preamble, object _, CancellationToken token) =>
            {
                lock (_lock)
                {
                    _prefilled.Add((preamble, token));
                }

                return prefill?.Invoke(preamble, token) ?? Task.CompletedTask;
            });
    }

    /// <summary>The preambles decoded ahead so far, in order, with their tokens.</summary>
    public IReadOnlyList<(string Preamble, CancellationToken Token)> Prefilled
    {
        get
        {
            lock (_lock)
            {
                return [.. _prefilled];
            }
        }
    }

    private readonly List<(string Preamble, CancellationToken Token)> _prefilled = [];

    /// <summary>The answer requests so far (transcriptions left out), with their tokens.</summary>
    public IReadOnlyList<(MiniOmniRequest Request, CancellationToken Token)> Answers
    {
        get
        {
            lock (_lock)
            {
                return [.. _calls.Where(c => c.Request.Task != MiniOmniTask.Asr)];
            }
        }
    }

    /// <summary>The transcription requests so far.</summary>
    public IReadOnlyList<MiniOmniRequest> Transcriptions
    {
        get
        {
            lock (_lock)
            {
                return [.. _calls.Where(c => c.Request.Task == MiniOmniTask.Asr).Select(c => c.Request)];
            }
        }
    }

    /// <summary>
    /// From now on the engine takes each answer's <see cref="MiniOmniRequest.Transcription"/> (as the real engine decodes
    /// it beside the answer) and plays " what time is it" into it once <paramref name="hold"/> completes.
    /// </summary>
    public void TranscribeBeside(Task hold) => _transcriptHold = hold;

    private Task? _transcriptHold;

    private static async Task PlayTranscript(QuestionTranscription transcription, Task hold)
    {
        try
        {
            await hold.WaitAsync(transcription.CancellationToken);
            transcription.Writer.TryWrite(new TextDelta(" what time is it"));
            transcription.Writer.TryWrite(Completed(20, 6));
            transcription.Writer.TryComplete();
        }
        catch (Exception e)
        {
            transcription.Writer.TryComplete(e);
        }
    }

    /// <summary>The next answer plays <paramref name="script"/> instead of the default.</summary>
    public void ThenAnswer(Func<MiniOmniRequest, CancellationToken, IAsyncEnumerable<MiniOmniEvent>> script)
    {
        lock (_lock)
        {
            _answers.Enqueue(script);
        }
    }

    /// <summary>"Hello there" with two 480-sample speech chunks.</summary>
    public static MiniOmniEvent[] DefaultEvents { get; } =
        [new TextDelta("Hello"), Speech(480, 0.25f), new TextDelta(" there"), Speech(480, 0.125f), Completed(10, 5)];

    public static IAsyncEnumerable<MiniOmniEvent> DefaultAnswer(CancellationToken token) => Play(token, DefaultEvents);

    public static SpeechChunk Speech(int samples, float amplitude) => new(Signals.Tone(samples, amplitude, 24000), 24000);

    public static AnswerCompleted Completed(int promptTokens, int steps) => new(promptTokens, steps, 0, null, TimeSpan.Zero, []);

    /// <summary>Plays <paramref name="events"/>, then waits for <paramref name="hold"/> (if any) before <paramref name="after"/>; cancellation ends it at once.</summary>
    public static async IAsyncEnumerable<MiniOmniEvent> Play(
        [EnumeratorCancellation] CancellationToken token, MiniOmniEvent[] events, Task? hold = null, MiniOmniEvent[]? after = null)
    {
        foreach (var item in events)
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return item;
        }

        if (hold is not null)
        {
            await hold.WaitAsync(token);
            foreach (var item in after ?? [])
            {
                yield return item;
            }
        }
    }
}

/// <summary>Reads a session's messages in the background and waits for the ones a test expects.</summary>
internal sealed class SessionProbe
{
    // Only a guard against a hung session, never a timing assertion.
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);
    private readonly Channel<RealtimeServerMessage> _messages = Channel.CreateUnbounded<RealtimeServerMessage>();

    public SessionProbe(IRealtimeClientSession session)
    {
        Session = session;
        Reading = Task.Run(async () =>
        {
            try
            {
                await foreach (var message in session.GetStreamingResponseAsync())
                {
                    _messages.Writer.TryWrite(message);
                }

                _messages.Writer.TryComplete();
            }
            catch (Exception e)
            {
                _messages.Writer.TryComplete(e);
            }
        });
    }

    public IRealtimeClientSession Session { get; }

    /// <summary>Ends when the session's stream ends.</summary>
    public Task Reading { get; }

    /// <summary>Every message read so far, in order.</summary>
    public List<RealtimeServerMessage> Seen { get; } = [];

    public async Task<RealtimeServerMessage> WaitFor(Func<RealtimeServerMessage, bool> match, string what)
    {
        using var guard = new CancellationTokenSource(HangGuard);
        while (true)
        {
            RealtimeServerMessage message;
            try
            {
                message = await _messages.Reader.ReadAsync(guard.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"No {what} within {HangGuard}; seen: {string.Join(", ", Types)}");
            }
            catch (ChannelClosedException)
            {
                throw new InvalidOperationException($"The session's stream ended before {what}; seen: {string.Join(", ", Types)}");
            }

            Seen.Add(message);
            if (match(message))
            {
                return message;
            }
        }
    }

    /// <summary>Waits for the session's stream to end and reads what is left of it.</summary>
    public async Task ReadToEnd()
    {
        await Reading.WaitAsync(HangGuard);
        while (_messages.Reader.TryRead(out var message))
        {
            Seen.Add(message);
        }
    }

    public async Task<T> WaitFor<T>(RealtimeServerMessageType type)
        where T : RealtimeServerMessage => (T)await WaitFor(m => m.Type == type, type.Value);

    public Task<RealtimeServerMessage> WaitFor(RealtimeServerMessageType type) => WaitFor(m => m.Type == type, type.Value);

    /// <summary>Waits for the response-done of the next response to end.</summary>
    public Task<ResponseCreatedRealtimeServerMessage> WaitForResponseDone() => WaitFor<ResponseCreatedRealtimeServerMessage>(RealtimeServerMessageType.ResponseDone);

    public List<string> Types => [.. Seen.Select(m => m.Type.Value)];

    public async Task Send(RealtimeClientMessage message) => await Session.SendAsync(message);

    /// <summary>Appends <paramref name="samples"/> as 16-bit PCM at <paramref name="rate"/> in chunks of <paramref name="chunkMs"/> ms.</summary>
    public async Task AppendPcm(float[] samples, int rate = 16000, int chunkMs = 100)
    {
        int chunk = rate * chunkMs / 1000;
        for (int at = 0; at < samples.Length; at += chunk)
        {
            byte[] pcm = Pcm16Wave.ToPcm16Bytes(samples.AsSpan(at, Math.Min(chunk, samples.Length - at)));
            await Send(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(pcm, $"audio/pcm;rate={rate}")));
        }
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualClock : TimeProvider
{
    private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

internal static class Signals
{
    public static float[] Tone(int samples, float amplitude, int rate = 16000, double frequency = 440) =>
        [.. Enumerable.Range(0, samples).Select(i => amplitude * (float)Math.Sin(2 * Math.PI * frequency * i / rate))];

    public static float[] Silence(double seconds, int rate = 16000) => new float[(int)Math.Round(seconds * rate)];

    public static float[] Concat(params float[][] parts) => [.. parts.SelectMany(p => p)];

    /// <summary>What <paramref name="samples"/> become after a trip through 16-bit PCM.</summary>
    public static float[] ThroughPcm16(float[] samples) => [.. samples.Select(s => Pcm16Wave.ToPcm16(s) / 32768f)];

    public static byte[] Decode(string? base64) => Convert.FromBase64String(base64 ?? string.Empty);
}
