using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>What the chat client takes in: every container the decoder reads, and structured-output requests.</summary>
public sealed class ChatClientInputTests
{
    [Theory]
    [InlineData("chrome-mediarecorder.webm", "audio/webm;codecs=opus")]
    [InlineData("tones-mono-16k.ogg", "audio/ogg")]
    public async Task ABrowsersRecordingIsHeardAsTheDecoderDecodesIt(string file, string mediaType)
    {
        var engine = new ScriptedEngine(new TextDelta("ok"), ScriptedEngine.Completed());
        using var client = new MiniOmniChatClient(engine.Object, new MiniOmniChatClientOptions { TranscribeSpokenTurns = false });
        byte[] recording = File.ReadAllBytes(Fixture.Audio(file));

        await client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(recording, mediaType)])], new ChatOptions().WithMiniOmniOutput(MiniOmniOutput.Text));

        Assert.Equal(AudioDecoder.Decode(recording, mediaType), engine.Request.Audio.ToArray());
        Assert.Equal(MiniOmniTask.A1T2, engine.Request.Task);
    }

    [Fact]
    public async Task AudioOfAnUnreadableTypeIsRefusedNamingWhatIsHeard()
    {
        var engine = new ScriptedEngine(ScriptedEngine.Completed());
        using var client = new MiniOmniChatClient(engine.Object);

        var error = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(new byte[64], "audio/aac")])]));

        Assert.Contains("Opus in Ogg or WebM", error.Message);
        Assert.DoesNotContain("WAV or MP3", error.Message);
    }

    [Fact]
    public async Task AJsonSchemaResponseFormatReachesTheModelAsInstructionsWithTheSchema()
    {
        var engine = new ScriptedEngine(new TextDelta("{}"), ScriptedEngine.Completed());
        using var client = new MiniOmniChatClient(engine.Object);
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""").RootElement;

        await client.GetResponseAsync("Where is the Eiffel tower?", new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema, "place") });
        string withSchema = ScriptedEngine.PreambleOf(engine.Requests[^1])!;
        await client.GetResponseAsync("Where is the Eiffel tower?", new ChatOptions { ResponseFormat = ChatResponseFormat.Json });
        string json = ScriptedEngine.PreambleOf(engine.Requests[^1])!;
        await client.GetResponseAsync("Where is the Eiffel tower?", new ChatOptions { ResponseFormat = ChatResponseFormat.Text });

        Assert.Contains("JSON", withSchema);
        Assert.Contains("\"required\":[\"city\"]", withSchema);
        Assert.Contains("'place'", withSchema);
        Assert.Contains("one JSON object", json);
        Assert.Null(ScriptedEngine.PreambleOf(engine.Requests[^1]));
    }
}
