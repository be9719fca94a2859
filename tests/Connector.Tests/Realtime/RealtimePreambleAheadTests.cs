// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>
/// A realtime session decodes its next preamble while the user speaks (<see cref="MiniOmniRealtimeClientOptions.PrefillHistoryAhead"/>),
/// over a scripted engine with a prompt cache: what it decodes ahead is exactly what the next answer starts with, and it
/// never runs beside an answer.
/// </summary>
public sealed class RealtimePreambleAheadTests
{
    [Fact]
    public async Task AfterEachAnswerTheSessionDecodesExactlyThePreambleTheNextAnswerStartsWith()
    {
        var engine = new ScriptedEngine();
        engine.WithPromptCache();
        await using var session = await TextSession(engine);
        var probe = new SessionProbe(session);
        for (int turn = 0; turn < 3; turn++)
        {
            await probe.Send(UserText($"Which platform for train {turn}?"));
            await probe.Send(new CreateResponseRealtimeClientMessage());
            await probe.WaitForResponseDone();
            await ((MiniOmniRealtimeSession)session).PreambleAheadIdle;
        }

        var prefilled = engine.Prefilled.Select(p => p.Preamble).ToList();
        var preambles = engine.Answers.Select(a => a.Request.Preamble!).ToList();
        // Each later answer's preamble (instructions, then every earlier exchange) was in the cache before it was asked.
        Assert.Contains(preambles[1], prefilled);
        Assert.Contains(preambles[2], prefilled);
        Assert.Contains("User: Which platform for train 1?\nAssistant: Hello there\n", preambles[2], StringComparison.Ordinal);
        // The last one decoded is what a fourth turn would start with.
        Assert.Equal(preambles[2] + "User: Which platform for train 2?\nAssistant: Hello there\n", prefilled[^1]);
    }

    [Fact]
    public async Task AResponseStopsADecodeAheadAndNoneStartsWhileAnAnswerIsGenerated()
    {
        var engine = new ScriptedEngine();
        engine.WithPromptCache((_, token) => Task.Delay(Timeout.Infinite, token));
        var release = new TaskCompletionSource();
        engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("Platform")], release.Task, [new TextDelta(" nine"), ScriptedEngine.Completed(10, 2)]));
        await using var session = await TextSession(engine);
        var probe = new SessionProbe(session);

        await probe.Send(UserText("Which platform for the night train?"));
        var first = await Eventually(() => engine.Prefilled.Count == 1, () => engine.Prefilled[0]);
        Assert.False(first.Token.IsCancellationRequested);
        await probe.Send(new CreateResponseRealtimeClientMessage());
        Assert.True(first.Token.IsCancellationRequested, "the decode ahead goes on beside the answer");

        // While the answer is generated its text is not final: an item added meanwhile starts no decode ahead.
        await probe.WaitFor(RealtimeServerMessageType.OutputTextDelta);
        await probe.Send(UserText("And the sleeper car?"));
        Assert.Single(engine.Prefilled);
        release.SetResult();
        await probe.WaitForResponseDone();
        var next = await Eventually(() => engine.Prefilled.Count == 2, () => engine.Prefilled[1]);
        Assert.Equal("Be brief.\nUser: Which platform for the night train?\nAssistant: Platform nine\nUser: And the sleeper car?\n", next.Preamble);
    }

    [Fact]
    public async Task WithoutItOrWithoutAPromptCacheNothingIsDecodedAhead()
    {
        var engine = new ScriptedEngine();
        engine.WithPromptCache();
        await using (var session = await TextSession(engine, new MiniOmniRealtimeClientOptions { PrefillHistoryAhead = false }))
        {
            var probe = new SessionProbe(session);
            await probe.Send(UserText("Is the train on time?"));
            await probe.Send(new CreateResponseRealtimeClientMessage());
            await probe.WaitForResponseDone();
        }

        Assert.Empty(engine.Prefilled);

        // An engine without a prompt cache (a plain IMiniOmniEngine) answers as before.
        var plain = new ScriptedEngine();
        await using var other = await TextSession(plain);
        var otherProbe = new SessionProbe(other);
        await otherProbe.Send(UserText("Is the train on time?"));
        await otherProbe.Send(new CreateResponseRealtimeClientMessage());
        Assert.Equal(RealtimeResponseStatus.Completed, (await otherProbe.WaitForResponseDone()).Status);
    }

    private static Task<IRealtimeClientSession> TextSession(ScriptedEngine engine, MiniOmniRealtimeClientOptions? options = null) =>
        new MiniOmniRealtimeClient(engine.Object, options ?? new MiniOmniRealtimeClientOptions()).CreateSessionAsync(new RealtimeSessionOptions
        {
            OutputModalities = ["text"],
            Instructions = "Be brief.",
            VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
        });

    private static CreateConversationItemRealtimeClientMessage UserText(string text) =>
        new(new RealtimeConversationItem([new TextContent(text)], null, ChatRole.User));

    // Waits for what the session does in the background (a hang guard, never a timing assertion).
    private static async Task<T> Eventually<T>(Func<bool> condition, Func<T> then)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, guard.Token);
        }

        return then();
    }
}
