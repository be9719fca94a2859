using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Tests.Infrastructure;
using OpenAI;
using OpenAI.Audio;
using OpenAI.Chat;

namespace MiniOmni.SK.Server.Tests;

/// <summary>What OpenAI's SDK sends and expects around chat and speech: spoken turns by id, voices, usage details, structured output, opus.</summary>
[Collection(ServerCollection.Name)]
public sealed class ChatCompatibilityTests(FixtureEngine fixture)
{
    private static readonly ApiKeyCredential Unused = new("not-needed-on-loopback");

    [Fact]
    public async Task TheSdksAssistantMessageOfASpokenAnswerIsReadAsItsTranscriptUntilItExpires()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        var engine = new ScriptedEngine((_, token) => ScriptedEngine.Play(
            [new TextDelta("My name is Omni."), new SpeechChunk(new float[2400], 24000), ScriptedEngine.Completed(10, 4)], token));
        await using var factory = new ServerFactory(engine, services: s => s.AddSingleton<TimeProvider>(clock));
        var sdk = new ChatClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = new Uri(factory.StartKestrel(), "/v1") });
        await factory.WaitReadyAsync();
        var spoken = new ChatCompletionOptions
        {
            ResponseModalities = ChatResponseModalities.Text | ChatResponseModalities.Audio,
            AudioOptions = new ChatAudioOptions(ChatOutputAudioVoice.Alloy, ChatOutputAudioFormat.Wav),
        };

        ChatCompletion first = await sdk.CompleteChatAsync([new UserChatMessage("What is your name?")], spoken);
        // The SDK's way to continue: the assistant message made from the completion carries only {"audio": {"id": ...}}.
        List<ChatMessage> history = [new UserChatMessage("What is your name?"), new AssistantChatMessage(first), new UserChatMessage("Say it again.")];
        await sdk.CompleteChatAsync(history, spoken);

        Assert.Equal(clock.GetUtcNow().AddHours(1), first.OutputAudio.ExpiresAt);
        Assert.Contains("My name is Omni.", PreambleOf(engine.Requests[1]));

        clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        var expired = await Assert.ThrowsAsync<ClientResultException>(() => sdk.CompleteChatAsync(history, spoken));
        Assert.Equal(400, expired.Status);
        Assert.Contains("audio_not_found", expired.Message);
        Assert.Equal(2, engine.Requests.Count);
    }

    [Fact]
    public async Task AVoiceIsANameOrAnIdAndTheUsageHasTokenDetails()
    {
        var engine = new ScriptedEngine((_, token) => ScriptedEngine.Play(
            [new TextDelta("Hello."), new SpeechChunk(new float[2400], 24000), ScriptedEngine.Completed(10, 4) with { TextTokens = 1, PromptAudioPositions = 6 }], token));
        await using var factory = new ServerFactory(engine);
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        using var http = new HttpClient { BaseAddress = address };

        object Request(object voice) => new
        {
            model = "mini-omni",
            modalities = new[] { "text", "audio" },
            audio = new { voice, format = "wav" },
            messages = new[] { new { role = "user", content = "Hi" } },
        };

        var byId = await http.PostAsJsonAsync("/v1/chat/completions", Request(new { id = "voice_1234" }));
        var bad = await http.PostAsJsonAsync("/v1/chat/completions", Request(5));
        var sdk = new ChatClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = new Uri(address, "/v1") });
        ChatCompletion completion = await sdk.CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions
        {
            ResponseModalities = ChatResponseModalities.Text | ChatResponseModalities.Audio,
            AudioOptions = new ChatAudioOptions(ChatOutputAudioVoice.Verse, ChatOutputAudioFormat.Wav),
        });

        Assert.Equal(HttpStatusCode.OK, byId.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var body = JsonDocument.Parse(await byId.Content.ReadAsStringAsync());
        var usage = body.RootElement.GetProperty("usage");
        Assert.Equal(JsonValueKind.Number, usage.GetProperty("prompt_tokens_details").GetProperty("audio_tokens").ValueKind);
        Assert.Equal(JsonValueKind.Number, usage.GetProperty("completion_tokens_details").GetProperty("audio_tokens").ValueKind);
        Assert.NotNull(completion.Usage.OutputTokenDetails);
        Assert.NotNull(completion.Usage.InputTokenDetails);
        Assert.Equal(4, completion.Usage.OutputTokenCount);
        // The scripted answer wrote 1 text token in 4 steps: the other 3 steps carried only speech.
        Assert.Equal(3, completion.Usage.OutputTokenDetails.AudioTokenCount);
        Assert.Equal(6, completion.Usage.InputTokenDetails.AudioTokenCount);
    }

    [Fact]
    public async Task AJsonSchemaResponseFormatReachesTheModelWithItsSchema()
    {
        var engine = new ScriptedEngine((_, token) => ScriptedEngine.Play([new TextDelta("{\"city\": \"Paris\"}"), ScriptedEngine.Completed(10, 4)], token));
        await using var factory = new ServerFactory(engine);
        var sdk = new ChatClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = new Uri(factory.StartKestrel(), "/v1") });
        await factory.WaitReadyAsync();

        ChatCompletion completion = await sdk.CompleteChatAsync([new UserChatMessage("Where is the Eiffel tower?")], new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("place", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""")),
        });

        Assert.Equal("{\"city\": \"Paris\"}", completion.Content[0].Text);
        string preamble = PreambleOf(engine.Requests[0]);
        Assert.Contains("JSON schema", preamble);
        Assert.Contains("\"city\"", preamble);
    }

    [Fact]
    public async Task OpusSpeechDecodesBackAndMp3IsRefusedListingWhatIsSpoken()
    {
        await using var factory = new ServerFactory(fixture.Engine);
        var sdk = new AudioClient("tts-1", Unused, new OpenAIClientOptions { Endpoint = new Uri(factory.StartKestrel(), "/v1") });
        await factory.WaitReadyAsync();

        BinaryData opus = await sdk.GenerateSpeechAsync("Hello there.", GeneratedSpeechVoice.Alloy, new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Opus });
        BinaryData wav = await sdk.GenerateSpeechAsync("Hello there.", GeneratedSpeechVoice.Alloy, new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Wav });
        var mp3 = await Assert.ThrowsAsync<ClientResultException>(() => sdk.GenerateSpeechAsync("Hello there.", GeneratedSpeechVoice.Alloy, new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Mp3 }));

        // The same speech (greedy decoding): the Ogg Opus decodes to as long a signal as the WAV, resampled to 16 kHz.
        float[] fromOpus = AudioDecoder.Decode(opus.ToMemory(), "audio/ogg");
        float[] fromWav = AudioDecoder.Decode(wav.ToMemory(), "audio/wav");
        Assert.Equal("OggS", System.Text.Encoding.ASCII.GetString(opus.ToArray(), 0, 4));
        Assert.InRange(fromOpus.Length, fromWav.Length - 2, fromWav.Length + 2);
        Assert.True(fromWav.Length > 1600);
        Assert.Equal(400, mp3.Status);
        Assert.Contains("opus", mp3.Message);
    }

    private static string PreambleOf(MiniOmniRequest request) =>
        request.PreambleSegments is { } segments ? PreambleSegment.Concat(segments) : request.Preamble ?? "";
}
