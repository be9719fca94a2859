// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Connector.Tests.Engine;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>
/// A required tool in a realtime session over the engine on the fixture model, under MEAI's function-invoking middleware.
/// Random weights cannot finish a call (a call with sensible arguments needs real ones); what is checked is that the
/// spoken turn is made to open the required call, that it is neither shown nor spoken, and that the unfinished call is
/// reported, not invoked and not read as text.
/// </summary>
public sealed class RealtimeToolEndToEndTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    [Fact]
    public async Task ARequiredToolMakesTheSpokenAnswerOpenThatCallEvenUnderFunctionInvocation()
    {
        int called = 0;
        var secret = AIFunctionFactory.Create(() => { called++; return 123; }, "GetSecretNumber");
        var shields = AIFunctionFactory.Create(() => { called++; return true; }, "ShieldsUp");
        using var client = new MiniOmniRealtimeClient(fixture.Engine).AsBuilder().UseFunctionInvocation().Build();
        await using var session = await client.CreateSessionAsync(new RealtimeSessionOptions
        {
            InputAudioFormat = new RealtimeAudioFormat("audio/pcm", 16000),
            VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
            MaxOutputTokens = 20,
            Tools = [secret, shields],
            ToolMode = ChatToolMode.RequireSpecific("ShieldsUp"),
        });
        var probe = new SessionProbe(session);

        await probe.AppendPcm(fixture.Question);
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var done = await probe.WaitForResponseDone();

        var error = probe.Seen.OfType<ErrorRealtimeServerMessage>().Single();
        Assert.Equal("invalid_tool_call", error.Error?.ErrorCode);
        Assert.StartsWith("\n{\"name\": \"ShieldsUp\", \"arguments\": ", error.Error?.Details, StringComparison.Ordinal);
        Assert.DoesNotContain(probe.Seen, m => m is OutputTextAudioRealtimeServerMessage);
        Assert.DoesNotContain(probe.Seen, m => m.Type == RealtimeServerMessageType.ResponseOutputItemAdded);
        Assert.Equal(["text"], probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().First().OutputModalities);
        Assert.Equal(RealtimeResponseStatus.Incomplete, done.Status);
        Assert.Equal(20, done.Usage?.OutputTokenCount);
        Assert.Equal(0, called);
    }
}
