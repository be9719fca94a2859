using System.ClientModel;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Tests.Infrastructure;
using OpenAI.Realtime;
using RealtimeResponseStatus = OpenAI.Realtime.RealtimeResponseStatus;

namespace MiniOmni.SK.Server.Tests;

/// <summary>
/// Function calling over /v1/realtime, driven by the official OpenAI .NET SDK's realtime client: session tools and
/// tool_choice, the call's output item and argument events, and a function_call_output item that the next response
/// goes on from. The engine is scripted (random weights cannot write a sensible call), so what is checked is the protocol.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class RealtimeToolCallTests
{
    private static readonly ApiKeyCredential Unused = new("not-needed-on-loopback");

    [Fact]
    public async Task TheSdksRealtimeClientGetsAFunctionCallAndItsOutputContinuesTheSpokenAnswer()
    {
        // The model "calls" get_weather (after the opening a required mode forces, which the engine streams as text)
        // unless the preamble already holds the function's result; then it speaks.
        var engine = new ScriptedEngine((request, token) => ScriptedEngine.Play(
            request.Preamble?.Contains("<tool_response>", StringComparison.Ordinal) == true
                ? [new TextDelta("It is sunny."), new SpeechChunk(new float[2400], 24000), ScriptedEngine.Completed(40, 6)]
                : [new TextDelta(request.AnswerPrefix + "get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), new TextDelta(" ignored"), ScriptedEngine.Completed(30, 9)],
            token));
        await using var factory = new ServerFactory(engine);
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        var realtime = new RealtimeClient(Unused, new RealtimeClientOptions { Endpoint = new Uri(address, "/v1") });
        using var session = await realtime.StartConversationSessionAsync("mini-omni");

        var options = new RealtimeConversationSessionOptions
        {
            Instructions = "Answer with your tools.",
            ToolChoice = new RealtimeToolChoice(RealtimeDefaultToolChoice.Required),
        };
        options.Tools.Add(new RealtimeFunctionTool("get_weather")
        {
            FunctionDescription = "The weather in a city.",
            FunctionParameters = BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""),
        });
        await session.ConfigureConversationSessionAsync(options);
        await session.AddItemAsync(RealtimeItem.CreateUserMessageItem("What is the weather in Paris?"));
        await session.StartResponseAsync();
        var calling = await ReceiveUntilResponseDone(session);

        var called = Assert.IsType<RealtimeFunctionCallItem>(calling.Of<RealtimeServerUpdateResponseOutputItemDone>().Single().Item);
        await session.AddItemAsync(RealtimeItem.CreateFunctionCallOutputItem(called.CallId, "sunny, 21 °C"));
        await session.StartResponseAsync();
        var answering = await ReceiveUntilResponseDone(session);

        // The session took the tools: none of the events was an error.
        Assert.Empty(calling.Of<RealtimeServerUpdateError>());
        Assert.Empty(answering.Of<RealtimeServerUpdateError>());
        var asked = engine.Requests[0];
        Assert.StartsWith("Answer with your tools.\n\n# Tools\n", asked.Preamble, StringComparison.Ordinal);
        Assert.Contains("\"get_weather\"", asked.Preamble, StringComparison.Ordinal);
        Assert.Equal("<tool_call>\n{\"name\": \"", asked.AnswerPrefix);
        Assert.Equal(MiniOmniTask.T1T2, asked.Task);

        // The call: item added (in progress, no arguments yet), arguments streamed and done, item done, listed in response.done.
        Assert.Equal(["ResponseCreated", "ResponseOutputItemAdded", "ResponseFunctionCallArgumentsDelta", "ResponseFunctionCallArgumentsDone", "ResponseOutputItemDone", "ResponseDone"], calling.Kinds);
        var added = Assert.IsType<RealtimeFunctionCallItem>(calling.Of<RealtimeServerUpdateResponseOutputItemAdded>().Single().Item);
        Assert.Equal("get_weather", added.FunctionName);
        Assert.Equal(called.Id, added.Id);
        var delta = calling.Of<RealtimeServerUpdateResponseFunctionCallArgumentsDelta>().Single();
        var done = calling.Of<RealtimeServerUpdateResponseFunctionCallArgumentsDone>().Single();
        Assert.Equal(called.CallId, delta.CallId);
        Assert.Equal(called.Id, delta.ItemId);
        Assert.Equal(delta.Delta.ToString(), done.FunctionArguments.ToString());
        Assert.Equal("get_weather", done.FunctionName);
        Assert.Equal("Paris", JsonDocument.Parse(done.FunctionArguments).RootElement.GetProperty("city").GetString());
        Assert.Equal("Paris", JsonDocument.Parse(called.FunctionArguments).RootElement.GetProperty("city").GetString());
        var response = calling.Of<RealtimeServerUpdateResponseDone>().Single().Response;
        Assert.Equal(RealtimeResponseStatus.Completed, response.Status);
        Assert.Equal(called.CallId, Assert.IsType<RealtimeFunctionCallItem>(Assert.Single(response.OutputItems)).CallId);

        // The output: echoed as a conversation item, and the next response goes on from it, spoken.
        var output = Assert.IsType<RealtimeFunctionCallOutputItem>(answering.Of<RealtimeServerUpdateConversationItemAdded>().First().Item);
        Assert.Equal(called.CallId, output.CallId);
        Assert.Equal("sunny, 21 °C", output.FunctionOutput);
        var goingOn = engine.Requests[1];
        Assert.Null(goingOn.AnswerPrefix);
        Assert.Equal(MiniOmniTask.T1A2, goingOn.Task);
        Assert.EndsWith("Tool: <tool_response>\nsunny, 21 °C\n</tool_response>\n", goingOn.Preamble, StringComparison.Ordinal);
        Assert.Contains("Assistant: <tool_call>", goingOn.Preamble, StringComparison.Ordinal);
        Assert.Equal("It is sunny.", string.Concat(answering.Of<RealtimeServerUpdateResponseOutputAudioTranscriptDelta>().Select(d => d.Delta)));
        Assert.Equal(4800, answering.Of<RealtimeServerUpdateResponseOutputAudioDelta>().Sum(d => d.Delta.ToArray().Length));
        Assert.Equal(RealtimeResponseStatus.Completed, answering.Of<RealtimeServerUpdateResponseDone>().Single().Response.Status);
    }

    [Fact]
    public async Task TheSessionShowsItsToolsABadToolEventIsAnErrorNamingTheFieldAndABadCallIsTheServers()
    {
        // A call with no name: the model got it wrong, which is the server's error, not the client's.
        var engine = new ScriptedEngine((_, token) => ScriptedEngine.Play([new TextDelta("<tool_call>{\"arguments\": {}}</tool_call>"), ScriptedEngine.Completed(1, 1)], token));
        await using var factory = new ServerFactory(engine);
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://{address.Authority}/v1/realtime"), CancellationToken.None);
        await Receive(socket); // session.created

        await Send(socket, """{"type":"session.update","session":{"type":"realtime","instructions":"Use f.","tools":[{"type":"function","name":"f","description":"Does f.","parameters":{"type":"object","properties":{}}}],"tool_choice":{"type":"function","name":"f"}}}""");
        var updated = await Receive(socket);
        await Send(socket, """{"type":"session.update","session":{"type":"realtime","tool_choice":{"type":"function","name":"g"}}}""");
        var unknown = await Receive(socket);
        await Send(socket, """{"type":"session.update","session":{"type":"realtime","tool_choice":"sometimes"}}""");
        var badChoice = await Receive(socket);
        await Send(socket, """{"type":"conversation.item.create","item":{"type":"function_call_output","output":"1"}}""");
        var noCallId = await Receive(socket);
        await Send(socket, """{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Do f."}]}}""");
        await Send(socket, """{"type":"response.create"}""");
        JsonElement invalidCall;
        do
        {
            invalidCall = await Receive(socket);
        }
        while (invalidCall.GetProperty("type").GetString() is not ("error" or "response.done"));

        Assert.Equal("session.updated", updated.GetProperty("type").GetString());
        var session = updated.GetProperty("session");
        Assert.Equal("Use f.", session.GetProperty("instructions").GetString());
        var tool = Assert.Single(session.GetProperty("tools").EnumerateArray().ToList());
        Assert.Equal("function", tool.GetProperty("type").GetString());
        Assert.Equal("f", tool.GetProperty("name").GetString());
        Assert.Equal("Does f.", tool.GetProperty("description").GetString());
        Assert.Equal("object", tool.GetProperty("parameters").GetProperty("type").GetString());
        Assert.Equal("f", session.GetProperty("tool_choice").GetProperty("name").GetString());
        Assert.Equal("invalid_session_options", unknown.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("'g'", unknown.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal("session.tool_choice", badChoice.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("item.call_id", noCallId.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("error", invalidCall.GetProperty("type").GetString());
        Assert.Equal("invalid_tool_call", invalidCall.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("server_error", invalidCall.GetProperty("error").GetProperty("type").GetString());
    }

    private static Task Send(ClientWebSocket socket, string json) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    private static async Task<JsonElement> Receive(ClientWebSocket socket)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new byte[1 << 20];
        int length = 0;
        ValueWebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer.AsMemory(length), guard.Token);
            length += result.Count;
        }
        while (!result.EndOfMessage);

        return JsonDocument.Parse(buffer.AsMemory(0, length)).RootElement.Clone();
    }

    private static async Task<Updates> ReceiveUntilResponseDone(RealtimeSessionClient session)
    {
        var updates = new Updates();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var update in session.ReceiveUpdatesAsync(guard.Token))
        {
            updates.All.Add(update);
            if (update is RealtimeServerUpdateResponseDone)
            {
                break;
            }
        }

        return updates;
    }

    private sealed class Updates
    {
        public List<RealtimeServerUpdate> All { get; } = [];

        /// <summary>The kinds from the response's creation on (session and item events before it left out).</summary>
        public List<string> Kinds => [.. All.SkipWhile(u => u is not RealtimeServerUpdateResponseCreated).Select(u => u.GetType().Name.Replace("RealtimeServerUpdate", string.Empty, StringComparison.Ordinal))];

        public IEnumerable<T> Of<T>() => All.OfType<T>();
    }
}
