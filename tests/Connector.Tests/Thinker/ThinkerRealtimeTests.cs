// MEAI's realtime abstractions are experimental (MEAI001); these tests drive them.
#pragma warning disable MEAI001

using System.ClientModel;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Cli.Bench;
using MiniOmni.SK.Connector.Tests.AI;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Connector.Tests.Realtime;
using OpenAI;

namespace MiniOmni.SK.Connector.Tests.Thinker;

/// <summary>Realtime sessions whose answers a thinker writes (<see cref="MiniOmniRealtimeClientOptions.Thinker"/>), on the fixture model.</summary>
public sealed class ThinkerRealtimeTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private static readonly RealtimeSessionOptions ManualTurns = Manual();

    private static RealtimeSessionOptions Manual(IReadOnlyList<AITool>? tools = null) => new()
    {
        Tools = tools,
        InputAudioFormat = new RealtimeAudioFormat("audio/pcm", 16000),
        VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
        Instructions = "Be brief.",
        SessionKind = RealtimeSessionKind.Conversation,
    };

    [Fact]
    public async Task TheSessionSpeaksTheThinkersAnswerToItsConversation()
    {
        const string Answer = "Hello! Ça va? 東京 is lovely.";
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = Answer, CharactersPerToken = 2, TokensPerSecond = 300, FirstTokenDelay = TimeSpan.Zero });
        var probe = await Open(thinker);

        await Ask(probe, "How are you?");
        var done = await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Completed, done.Status);
        var outputs = probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().ToList();
        Assert.Equal(Answer, string.Concat(outputs.Where(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDelta).Select(m => m.Text)));
        Assert.Contains(outputs, m => m.Type == RealtimeServerMessageType.OutputAudioDelta);
        var messages = JsonNode.Parse(Assert.Single(thinker.Requests))!["messages"]!.AsArray();
        Assert.Equal(["system", "user"], messages.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal("Be brief.", messages[0]!["content"]!.GetValue<string>());
        Assert.Equal("How are you?", messages[1]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task AFailingThinkerFailsTheTurnNamingItsEndpointAndTheSessionGoesOn()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { FailWithStatus = 500, Failures = 1, Answer = "Back again.", FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        var probe = await Open(thinker);

        await Ask(probe, "Are you there?");
        var error = await probe.WaitFor<ErrorRealtimeServerMessage>(RealtimeServerMessageType.Error);
        var failed = await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Failed, failed.Status);
        Assert.Contains(thinker.Endpoint.ToString(), error.Error!.Message);
        Assert.Contains("HTTP 500", error.Error.Message);

        probe.Seen.Clear();
        await Ask(probe, "And now?");
        var done = await probe.WaitForResponseDone();
        Assert.Equal(RealtimeResponseStatus.Completed, done.Status);
        Assert.Equal("Back again.", string.Concat(probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDelta).Select(m => m.Text)));
        // The second turn's thinker saw the first question; the failed answer said nothing and is left out.
        Assert.Equal(["system", "user", "user"], JsonNode.Parse(thinker.Requests[^1])!["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
    }

    [Fact]
    public async Task CancellingTheResponseCancelsTheThinkersRequest()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = string.Concat(Enumerable.Repeat("Still talking. ", 40)), TokensPerSecond = 5, FirstTokenDelay = TimeSpan.Zero });
        var probe = await Open(thinker);

        await Ask(probe, "Tell me a long story.");
        await probe.WaitFor(RealtimeServerMessageType.OutputAudioTranscriptionDelta);
        await probe.Send(new CancelResponseRealtimeClientMessage());
        var done = await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Cancelled, done.Status);
        await thinker.AnswerAbandoned.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task TheClientsToolsAreOfferedToTheThinkerAndItsCallComesBackAsAFunctionCallItem()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = "It is {tool} in Oslo.", CallTool = "GetWeather", ToolArguments = """{"city":"Oslo"}""", FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        var probe = await Open(thinker, Manual([AIFunctionFactory.Create((string city) => "sunny", "GetWeather")]));

        await Ask(probe, "Weather in Oslo?");
        var first = await probe.WaitForResponseDone();
        var callDone = probe.Seen.OfType<ResponseOutputItemRealtimeServerMessage>().Single(m => m.ResponseId == first.ResponseId && m.Type == RealtimeServerMessageType.ResponseOutputItemDone);
        var call = Assert.IsType<FunctionCallContent>(Assert.Single(callDone.Item!.Contents));
        Assert.Equal("GetWeather", call.Name);
        Assert.Equal("Oslo", call.Arguments!["city"]!.ToString());
        Assert.Contains("GetWeather", thinker.Requests[0]);

        probe.Seen.Clear();
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new FunctionResultContent(call.CallId, "sunny")])));
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var second = await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Completed, second.Status);
        Assert.Equal("It is sunny in Oslo.", string.Concat(probe.Seen.OfType<OutputTextAudioRealtimeServerMessage>().Where(m => m.Type == RealtimeServerMessageType.OutputAudioTranscriptionDelta).Select(m => m.Text)));
        // The thinker's second request carries its call and the client's result.
        Assert.Equal(["system", "user", "assistant", "tool"], JsonNode.Parse(thinker.Requests[1])!["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
    }

    [Fact]
    public async Task ASpokenTurnIsTranscribedOnceForTheThinkerAndTheClientBeforeTheAnswerIsSpoken()
    {
        await using var thinker = new LoopbackThinker(new LoopbackThinkerOptions { Answer = "Heard you.", FirstTokenDelay = TimeSpan.Zero, TokensPerSecond = 300 });
        var engine = new RecordingEngine(fixture.Engine);
        var client = new MiniOmniRealtimeClient(engine, new MiniOmniRealtimeClientOptions { Thinker = ThinkerClient(thinker), TranscribeUserSpeech = true });
        var probe = new SessionProbe(await client.CreateSessionAsync(ManualTurns));

        byte[] pcm = MiniOmniMediaTypes.EncodeSpeechChunk(fixture.Question);
        await probe.Send(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(pcm, "audio/pcm")));
        await probe.Send(new InputAudioBufferCommitRealtimeClientMessage());
        await probe.Send(new CreateResponseRealtimeClientMessage());
        var done = await probe.WaitForResponseDone();
        // A next turn runs after whatever the session queued behind the first (a second transcription of it, were there one).
        await Ask(probe, "And?");
        await probe.WaitForResponseDone();

        Assert.Equal(RealtimeResponseStatus.Completed, done.Status);
        Assert.Single(engine.Requests, r => r.Task == SK.Engine.MiniOmniTask.Asr);
        var transcribed = Assert.Single(probe.Seen.OfType<InputAudioTranscriptionRealtimeServerMessage>(), m => m.Type == RealtimeServerMessageType.InputAudioTranscriptionCompleted);
        int transcribedAt = probe.Seen.IndexOf(transcribed);
        int firstAudio = probe.Seen.FindIndex(m => m.Type == RealtimeServerMessageType.OutputAudioDelta);
        Assert.InRange(transcribedAt, 0, firstAudio);
        Assert.Equal(2, thinker.Requests.Count);
        string asked = JsonNode.Parse(thinker.Requests[0])!["messages"]!.AsArray()[^1]!["content"]!.GetValue<string>();
        Assert.False(string.IsNullOrWhiteSpace(transcribed.Transcription));
        Assert.Equal(transcribed.Transcription, asked);
    }

    private async Task<SessionProbe> Open(LoopbackThinker thinker, RealtimeSessionOptions? options = null)
    {
        var client = new MiniOmniRealtimeClient(fixture.Engine, new MiniOmniRealtimeClientOptions { Thinker = ThinkerClient(thinker), TranscribeUserSpeech = false });
        return new SessionProbe(await client.CreateSessionAsync(options ?? ManualTurns));
    }

    private static async Task Ask(SessionProbe probe, string question)
    {
        await probe.Send(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent(question)], null, ChatRole.User)));
        await probe.Send(new CreateResponseRealtimeClientMessage());
    }

    private static IChatClient ThinkerClient(LoopbackThinker thinker) =>
        new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = thinker.Endpoint, RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) }).GetChatClient("stand-in").AsIChatClient();
}
