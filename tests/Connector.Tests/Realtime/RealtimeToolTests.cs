// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using static MiniOmni.SK.Connector.Tests.Realtime.Signals;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>Tools in realtime sessions over a scripted engine: what the model is offered, and how its calls and their results travel.</summary>
public sealed class RealtimeToolTests
{
    private static readonly RealtimeAudioFormat Pcm16k = new("audio/pcm", 16000);

    private readonly ScriptedEngine _engine = new();

    [Fact]
    public async Task FunctionInvocationCallsTheToolFeedsItsResultBackAndTheAnswerIsSpoken()
    {
        int called = 0;
        var getTime = AIFunctionFactory.Create((string city) => { called++; return $"12:00 in {city}"; }, "GetTime", "The time in a city.");
        // The call arrives in pieces with speech among them: that speech belongs to a call and is never played.
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token,
            [new TextDelta("<tool_call>\n{\"name\": \"GetTime\", "), ScriptedEngine.Speech(480, 0.5f), new TextDelta("\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), new TextDelta(" and more"), ScriptedEngine.Completed(10, 5)]));
        using var client = new MiniOmniRealtimeClient(_engine.Object).AsBuilder().UseFunctionInvocation().Build();
        await using var session = await client.CreateSessionAsync(Manual(instructions: "Be brief.", tools: [getTime]));
        var probe = new SessionProbe(session);

        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("What time is it in Paris?")], null, ChatRole.User)));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var first = await probe.WaitForResponseDone();
        var second = await probe.WaitForResponseDone();

        Assert.Equal(1, called);
        Assert.Equal(2, _engine.Answers.Count);
        var asked = _engine.Answers[0].Request;
        Assert.Equal(MiniOmniTask.T1A2, asked.Task);
        Assert.Null(asked.AnswerPrefix);
        Assert.StartsWith("Be brief.\n\n# Tools\n", asked.Preamble, StringComparison.Ordinal);
        Assert.Contains("\"GetTime\"", asked.Preamble, StringComparison.Ordinal);
        Assert.Contains("<tool_call>", asked.Preamble, StringComparison.Ordinal);

        // The call: an item of its own, no message, nothing spoken; the engine's answer stopped at the call.
        Assert.Equal(["ResponseCreated", "ResponseOutputItemAdded", "ResponseOutputItemDone", "ResponseDone"], TypesOf(probe, first.ResponseId));
        var callItem = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Single(m => m.ResponseId == first.ResponseId && m.Type == RealtimeServerMessageType.ResponseOutputItemDone);
        var call = Assert.IsType<FunctionCallContent>(Assert.Single(callItem.Item!.Contents));
        Assert.Equal("GetTime", call.Name);
        Assert.Equal("Paris", call.Arguments?["city"]?.ToString());
        Assert.Equal(RealtimeResponseStatus.Completed, first.Status);
        Assert.True(_engine.Answers[0].Token.IsCancellationRequested);

        // The result continues the same question, with the call and its result after the history; the answer is spoken.
        var resultAdded = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Single(m => m.Type == RealtimeServerMessageType.ConversationItemAdded && m.Item!.Contents.Any(c => c is FunctionResultContent));
        Assert.Equal(call.CallId, Assert.IsType<FunctionResultContent>(Assert.Single(resultAdded.Item!.Contents)).CallId);
        var goingOn = _engine.Answers[1].Request;
        Assert.Equal(MiniOmniTask.T1A2, goingOn.Task);
        Assert.Equal("What time is it in Paris?", goingOn.Text);
        int callAt = goingOn.Preamble!.IndexOf("Assistant: <tool_call>\n{\n  \"name\": \"GetTime\",\n  \"arguments\": {\n    \"city\": \"Paris\"\n  }\n}\n</tool_call>\n", StringComparison.Ordinal);
        int resultAt = goingOn.Preamble.IndexOf("Tool: <tool_response>\n12:00 in Paris\n</tool_response>\n", StringComparison.Ordinal);
        Assert.True(callAt > 0 && resultAt > callAt, goingOn.Preamble);
        Assert.EndsWith("</tool_response>\n", goingOn.Preamble, StringComparison.Ordinal);
        Assert.Equal(RealtimeResponseStatus.Completed, second.Status);
        var spoken = probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().Where(m => m.ResponseId == second.ResponseId).ToList();
        Assert.Equal("Hello there", spoken.Single(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDone).Text);
        byte[] expected = [.. ScriptedEngine.DefaultEvents.OfType<SpeechChunk>().SelectMany(c => MiniOmniMediaTypes.EncodeSpeechChunk(c.Samples))];
        Assert.Equal(expected, spoken.Where(m => m.Type == RealtimeServerMessageType.OutputAudioDelta).SelectMany(m => Decode(m.Audio)).ToArray());
        Assert.DoesNotContain(probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>(), m => m.ResponseId == first.ResponseId);
    }

    [Fact]
    public async Task ARequiredToolMakesASpokenTurnOpenACallInTextAndTheAnswerAfterItsResultSpeaksFreely()
    {
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("<tool_call>\n{\"name\": \""), new TextDelta("two\", \"arguments\": {}}\n</tool_call>"), ScriptedEngine.Completed(10, 5)]));
        var probe = await Open(Manual(tools: [AIFunctionFactory.Create(() => 1, "one"), AIFunctionFactory.Create(() => 2, "two")], toolMode: ChatToolMode.RequireAny));

        await probe.AppendPcm(Tone(8000, 0.3f));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var first = await probe.WaitForResponseDone();
        var callDone = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Single(m => m.ResponseId == first.ResponseId && m.Type == RealtimeServerMessageType.ResponseOutputItemDone);
        var call = Assert.IsType<FunctionCallContent>(Assert.Single(callDone.Item!.Contents));
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new FunctionResultContent(call.CallId, 2)])));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var second = await probe.WaitForResponseDone();

        var required = _engine.Answers[0].Request;
        Assert.Equal("<tool_call>\n{\"name\": \"", required.AnswerPrefix);
        Assert.Equal(MiniOmniTask.A1T2, required.Task); // a turn that calls a tool speaks nothing
        Assert.Contains("\"two\"", required.Preamble, StringComparison.Ordinal);
        var created = probe.Seen.OfType<ResponseCreatedRealtimeServerMessage>().First(m => m.Type == RealtimeServerMessageType.ResponseCreated);
        Assert.Equal(["text"], created.OutputModalities);
        Assert.Equal("two", call.Name);
        var free = _engine.Answers[1].Request;
        Assert.Null(free.AnswerPrefix);
        Assert.Equal(MiniOmniTask.A1A2, free.Task);
        Assert.Equal(required.Audio.ToArray(), free.Audio.ToArray());
        Assert.EndsWith("Tool: <tool_response>\n2\n</tool_response>\n", free.Preamble, StringComparison.Ordinal);
        Assert.Contains(probe.Seen, m => m.Type == RealtimeServerMessageType.OutputAudioDelta && ((OutputTextAudioRealtimeServerMessage)m).ResponseId == second.ResponseId);
    }

    [Fact]
    public async Task AResponseNamingItsOwnToolAndModeOverridesTheSessionAndNoneOffersNothing()
    {
        var probe = await Open(Manual(tools: [AIFunctionFactory.Create(() => 1, "one")]));
        var launch = AIFunctionFactory.Create(() => true, "Launch");

        await Ask(probe, new CreateResponseRealtimeClientMessage { Tools = [launch], ToolMode = ChatToolMode.RequireSpecific("Launch") });
        await Ask(probe, new CreateResponseRealtimeClientMessage { ToolMode = ChatToolMode.None });
        await Ask(probe, new CreateResponseRealtimeClientMessage());

        Assert.Equal("<tool_call>\n{\"name\": \"Launch\", \"arguments\": ", _engine.Answers[0].Request.AnswerPrefix);
        Assert.Contains("\"Launch\"", _engine.Answers[0].Request.Preamble, StringComparison.Ordinal);
        Assert.DoesNotContain("\"one\"", _engine.Answers[0].Request.Preamble, StringComparison.Ordinal);
        Assert.DoesNotContain("<tools>", _engine.Answers[1].Request.Preamble ?? string.Empty, StringComparison.Ordinal);
        Assert.Null(_engine.Answers[1].Request.AnswerPrefix);
        Assert.Contains("\"one\"", _engine.Answers[2].Request.Preamble, StringComparison.Ordinal);
        Assert.Null(_engine.Answers[2].Request.AnswerPrefix);
    }

    [Fact]
    public async Task TextBeforeACallIsShownAndSpokenAsAMessageThenTheCallIsTheNextItem()
    {
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token,
            [new TextDelta("Let me check."), ScriptedEngine.Speech(480, 0.5f), new TextDelta(" <tool_call>\n{\"name\": \"one\", \"arguments\": {}}\n</tool_call>"), ScriptedEngine.Speech(480, 0.25f), ScriptedEngine.Completed(10, 5)]));
        var probe = await Open(Manual(tools: [AIFunctionFactory.Create(() => 1, "one")]));

        await Ask(probe, new CreateResponseRealtimeClientMessage());

        Assert.Equal(
            [
                "ConversationItemAdded", "ResponseCreated", "ResponseOutputItemAdded", "ConversationItemAdded", "OutputAudioTranscriptionDelta",
                "OutputAudioDelta", "OutputAudioTranscriptionDelta", "OutputAudioDone", "OutputAudioTranscriptionDone", "ResponseOutputItemDone",
                "ConversationItemDone", "ResponseOutputItemAdded", "ResponseOutputItemDone", "ResponseDone",
            ],
            probe.Types);
        var items = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.ResponseOutputItemDone).ToList();
        Assert.Equal("Let me check. ", Assert.IsType<TextContent>(Assert.Single(items[0].Item!.Contents)).Text);
        Assert.Equal(0, items[0].OutputIndex);
        Assert.Equal("one", Assert.IsType<FunctionCallContent>(Assert.Single(items[1].Item!.Contents)).Name);
        Assert.Equal(1, items[1].OutputIndex);
    }

    [Fact]
    public async Task AnAnswerThatLooksLikeACallButIsNotPlaysItsHeldSpeechAndAMalformedCallIsAnError()
    {
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("  <tool"), ScriptedEngine.Speech(480, 0.5f), new TextDelta("box> is here"), ScriptedEngine.Completed(10, 5)]));
        _engine.ThenAnswer((_, token) => ScriptedEngine.Play(token, [new TextDelta("<tool_call>{\"arguments\": {}}</tool_call>"), ScriptedEngine.Completed(10, 5)]));
        var probe = await Open(Manual(tools: [AIFunctionFactory.Create(() => 1, "one")]));

        await Ask(probe, new CreateResponseRealtimeClientMessage());
        await Ask(probe, new CreateResponseRealtimeClientMessage());

        var spoken = probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().ToList();
        Assert.Equal("  <toolbox> is here", spoken.First(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDone).Text);
        Assert.Single(spoken, m => m.Type == RealtimeServerMessageType.OutputAudioDelta);
        var error = probe.Seen.OfType<ErrorRealtimeServerMessage>().Single();
        Assert.Equal("invalid_tool_call", error.Error?.ErrorCode);
        Assert.Contains("\"name\"", error.Error?.Message);
    }

    [Fact]
    public async Task ASessionUpdateWithToolsAppliesItsInstructionsAndTurnDetectionToo()
    {
        var probe = await Open(new RealtimeSessionOptions { InputAudioFormat = Pcm16k, VoiceActivityDetection = new MiniOmniVoiceActivityDetectionOptions() });
        var tool = AIFunctionFactory.Create(() => 1, "one");

        await probe.Send(new SessionUpdateRealtimeClientMessage(Manual(instructions: "Use your tools.", tools: [tool], toolMode: ChatToolMode.Auto)));
        await probe.AppendPcm(Concat(Silence(0.5), Tone(8000, 0.3f), Silence(1)));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        await probe.WaitForResponseDone();

        Assert.DoesNotContain(probe.Seen, m => m.Type == RealtimeServerMessageType.Error);
        Assert.DoesNotContain(probe.Seen, m => m.Type == MiniOmniRealtimeServerMessageTypes.InputSpeechStarted); // detection is off now
        Assert.Same(tool, Assert.Single(probe.Session.Options!.Tools!));
        Assert.StartsWith("Use your tools.\n\n# Tools\n", Assert.Single(_engine.Answers).Request.Preamble, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARequiredCallToAFunctionNotOfferedIsRefusedByName()
    {
        var client = new MiniOmniRealtimeClient(_engine.Object);
        AITool[] tools = [AIFunctionFactory.Create(() => 1, "one")];

        var unknown = await Assert.ThrowsAsync<ArgumentException>(() => client.CreateSessionAsync(Manual(tools: tools, toolMode: ChatToolMode.RequireSpecific("Launch"))));
        var none = await Assert.ThrowsAsync<ArgumentException>(() => client.CreateSessionAsync(Manual(toolMode: ChatToolMode.RequireAny)));
        var probe = await Open(Manual(tools: tools));
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("Hi")], null, ChatRole.User)));
        await probe.Send(new CreateResponseRealtimeClientMessage { ToolMode = ChatToolMode.RequireSpecific("Launch") });
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);

        Assert.Contains("'Launch'", unknown.Message);
        Assert.Contains("one", unknown.Message);
        Assert.Contains("no function", none.Message);
        Assert.Equal("invalid_session_options", error.Error?.ErrorCode);
        Assert.Contains("'Launch'", error.Error?.Message);
        Assert.Empty(_engine.Answers);
    }

    private static List<string> TypesOf(SessionProbe probe, string? responseId) =>
        [.. probe.Seen.Where(m => ResponseIdOf(m) == responseId).Select(m => m.Type.Value)];

    private static string? ResponseIdOf(RealtimeServerMessage message) => message switch
    {
        ResponseCreatedRealtimeServerMessage m => m.ResponseId,
        ResponseOutputItemRealtimeServerMessage m => m.ResponseId,
        OutputTextAudioRealtimeServerMessage m => m.ResponseId,
        _ => null,
    };

    private static RealtimeSessionOptions Manual(string? instructions = null, IReadOnlyList<AITool>? tools = null, ChatToolMode? toolMode = null) => new()
    {
        InputAudioFormat = Pcm16k,
        VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
        Instructions = instructions,
        Tools = tools,
        ToolMode = toolMode,
    };

    private async Task<SessionProbe> Open(RealtimeSessionOptions options) =>
        new(await new MiniOmniRealtimeClient(_engine.Object).CreateSessionAsync(options));

    private static async Task Ask(SessionProbe probe, CreateResponseRealtimeClientMessage request)
    {
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("What now?")], null, ChatRole.User)));
        await probe.Send(request);
        await probe.WaitForResponseDone();
    }
}
