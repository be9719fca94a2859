using System.ClientModel;
using System.Net.WebSockets;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Realtime;
using MiniOmni.SK.Server.Tests.Infrastructure;
using OpenAI;
using OpenAI.Audio;
using OpenAI.Chat;
using OpenAI.Realtime;
using MeaiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using OpenAIChatClient = OpenAI.Chat.ChatClient;
using ChatFinishReason = OpenAI.Chat.ChatFinishReason;
using RealtimeResponseStatus = OpenAI.Realtime.RealtimeResponseStatus;

namespace MiniOmni.SK.Server.Tests;

/// <summary>The server on a loopback port, driven by clients nobody here wrote: the official OpenAI .NET SDK, and Microsoft.Extensions.AI.OpenAI over it.</summary>
[Collection(ServerCollection.Name)]
public sealed class OpenAIClientTests(FixtureEngine fixture) : IAsyncLifetime
{
    private const int Tokens = 12;
    private static readonly ApiKeyCredential Unused = new("not-needed-on-loopback");
    private ServerFactory _factory = null!;
    private Uri _api = null!;

    public async Task InitializeAsync()
    {
        _factory = new ServerFactory(fixture.Engine);
        var address = _factory.StartKestrel();
        _api = new Uri(address, "/v1");
        await _factory.WaitReadyAsync();
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task TheSdksChatClientGetsTheSameSpokenAnswerAsTheConnectorGivesInProcess()
    {
        var sdk = new OpenAIChatClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = _api });
        var options = new ChatCompletionOptions
        {
            ResponseModalities = ChatResponseModalities.Text | ChatResponseModalities.Audio,
            AudioOptions = new ChatAudioOptions(ChatOutputAudioVoice.Alloy, ChatOutputAudioFormat.Wav),
            MaxOutputTokenCount = Tokens,
        };

        ChatCompletion completion = await sdk.CompleteChatAsync([new UserChatMessage(ChatMessageContentPart.CreateInputAudioPart(BinaryData.FromBytes(fixture.QuestionWav), ChatInputAudioFormat.Wav))], options);
        var direct = await fixture.Engine.AsIChatClient().GetResponseAsync(
            [new MeaiChatMessage(ChatRole.User, [new DataContent(fixture.QuestionWav, "audio/wav")])],
            new ChatOptions { MaxOutputTokens = Tokens }.WithMiniOmniOutput(MiniOmniOutput.TextAndSpeech));

        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(Tokens, completion.Usage.OutputTokenCount);
        Assert.Equal(direct.Text, completion.OutputAudio.Transcript);
        byte[] wav = completion.OutputAudio.AudioBytes.ToArray();
        var expected = direct.Messages[^1].Contents.OfType<DataContent>().Single();
        Assert.Equal(expected.Data.ToArray(), wav);
    }

    [Fact]
    public async Task StreamedAudioArrivesAsPcm16ChunksWithItsTranscriptAndUsage()
    {
        var sdk = new OpenAIChatClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = _api });
        var options = new ChatCompletionOptions
        {
            ResponseModalities = ChatResponseModalities.Text | ChatResponseModalities.Audio,
            AudioOptions = new ChatAudioOptions(ChatOutputAudioVoice.Alloy, ChatOutputAudioFormat.Pcm16),
            MaxOutputTokenCount = Tokens,
        };
        List<OpenAI.Chat.ChatMessage> question = [new UserChatMessage(ChatMessageContentPart.CreateInputAudioPart(BinaryData.FromBytes(fixture.QuestionWav), ChatInputAudioFormat.Wav))];

        var audio = new MemoryStream();
        var transcript = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in sdk.CompleteChatStreamingAsync(question, options))
        {
            audio.Write(update.OutputAudioUpdate?.AudioBytesUpdate?.ToArray() ?? []);
            transcript.Append(update.OutputAudioUpdate?.TranscriptUpdate);
            usage ??= update.Usage;
        }

        ChatCompletion whole = await sdk.CompleteChatAsync(question, options);
        Assert.True(audio.Length > 0);
        Assert.Equal(whole.OutputAudio.AudioBytes.ToArray(), audio.ToArray());
        Assert.Equal(whole.OutputAudio.Transcript, transcript.ToString());
        Assert.Equal(Tokens, usage?.OutputTokenCount);
    }

    [Fact]
    public async Task MeaisOpenAIChatClientOverTheSdkTalksToTheServer()
    {
        IChatClient client = new OpenAIClient(Unused, new OpenAIClientOptions { Endpoint = _api }).GetChatClient("mini-omni").AsIChatClient();

        var response = await client.GetResponseAsync("What is your name?", new ChatOptions { MaxOutputTokens = Tokens });
        var streamed = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync("What is your name?", new ChatOptions { MaxOutputTokens = Tokens }))
        {
            streamed.Append(update.Text);
        }

        var direct = await fixture.Engine.AsIChatClient().GetResponseAsync("What is your name?", new ChatOptions { MaxOutputTokens = Tokens });
        Assert.Equal(direct.Text, response.Text);
        Assert.Equal(direct.Text, streamed.ToString());
        Assert.Equal(Tokens, response.Usage?.OutputTokenCount);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Length, response.FinishReason);
    }

    [Fact]
    public async Task AToolCallTheModelWritesReachesTheSdkAsAToolCall()
    {
        var engine = new ScriptedEngine((_, token) => ScriptedEngine.Play(
            [new TextDelta("<tool_call>{\"name\": \"get_time\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call>"), ScriptedEngine.Completed(30, 20)], token));
        await using var factory = new ServerFactory(engine);
        var api = new Uri(factory.StartKestrel(), "/v1");
        await factory.WaitReadyAsync();
        var sdk = new OpenAIChatClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = api });
        var tool = ChatTool.CreateFunctionTool("get_time", "The time in a city.", BinaryData.FromString("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"));

        ChatCompletion completion = await sdk.CompleteChatAsync([new UserChatMessage("What time is it in Oslo?")], new ChatCompletionOptions { Tools = { tool } });

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_time", call.FunctionName);
        Assert.Equal("Oslo", System.Text.Json.JsonDocument.Parse(call.FunctionArguments).RootElement.GetProperty("city").GetString());
        Assert.Contains("get_time", PreambleOf(engine.Requests[0]));

        // The result goes back as a tool message, and the next turn hears it.
        await sdk.CompleteChatAsync([new UserChatMessage("What time is it in Oslo?"), new AssistantChatMessage([call]), new ToolChatMessage(call.Id, "12:00")], new ChatCompletionOptions { Tools = { tool } });
        Assert.Contains("12:00", PreambleOf(engine.Requests[1]));
    }

    [Fact]
    public async Task TheSdksAudioClientTranscribesAndSpeaks()
    {
        var audio = new AudioClient("mini-omni", Unused, new OpenAIClientOptions { Endpoint = _api });

        AudioTranscription transcription = await audio.TranscribeAudioAsync(new MemoryStream(fixture.QuestionWav), "question.wav", new AudioTranscriptionOptions { ResponseFormat = AudioTranscriptionFormat.Verbose });
        AudioTranscription simple = await audio.TranscribeAudioAsync(new MemoryStream(fixture.QuestionWav), "question.wav", new AudioTranscriptionOptions { ResponseFormat = AudioTranscriptionFormat.Simple });
        var direct = new StringBuilder();
        await foreach (var item in fixture.Engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = fixture.Question, MaxTokens = ServerFactory.AnswerTokens }))
        {
            direct.Append((item as TextDelta)?.Text);
        }

        Assert.Equal(direct.ToString().Trim(), transcription.Text);
        Assert.Equal(transcription.Text, simple.Text);
        Assert.Equal(fixture.Question.Length / 16000.0, transcription.Duration?.TotalSeconds ?? 0, 2);

        BinaryData wav = await audio.GenerateSpeechAsync("Hello there.", GeneratedSpeechVoice.Alloy, new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Wav });
        BinaryData pcm = await audio.GenerateSpeechAsync("Hello there.", GeneratedSpeechVoice.Alloy, new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Pcm });
        Assert.True(pcm.ToArray().Length > 0 && pcm.ToArray().Length % 2 == 0);
        Assert.Equal("RIFF", Encoding.ASCII.GetString(wav.ToArray(), 0, 4));
        Assert.Equal(pcm.ToArray(), wav.ToArray()[44..]);
    }

    [Fact]
    public async Task TheServersSessionsEncodeAheadDecodeTheNextPreambleAheadAndFreeWhatTheyKeptWhenTheyEnd()
    {
        var before = fixture.Engine.StageCounts;
        long keptBefore = fixture.Engine.Scheduler.CachedPrefixCells;
        using (var session = await SpokenTurnUnderServerVadAsync("You read the shipping forecast: sea areas, winds and visibility, briefly."))
        {
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await foreach (var update in session.ReceiveUpdatesAsync(guard.Token))
            {
                if (update is RealtimeServerUpdateResponseDone)
                {
                    break;
                }
            }

            // The turn was encoded while its speaker paused, and once answered, the next turn's preamble was decoded ahead.
            Assert.Equal(1, fixture.Engine.StageCounts.EncodesTakenAhead - before.EncodesTakenAhead);
            await Eventually(() => fixture.Engine.StageCounts.PreamblesPrefilledAhead > before.PreamblesPrefilledAhead, "the next preamble decoded ahead");
            Assert.True(fixture.Engine.Scheduler.CachedPrefixCells > keptBefore);
        }

        // Its kept preambles leave the cache with the session.
        await Eventually(() => fixture.Engine.Scheduler.CachedPrefixCells <= keptBefore, "the session's kept preambles freed");
    }

    // An SDK session with server VAD (500 ms) and the instructions given, which has been sent the fixture question at
    // 24 kHz (the realtime API's rate) between stretches of silence, in 100 ms appends.
    private async Task<RealtimeSessionClient> SpokenTurnUnderServerVadAsync(string instructions)
    {
        var realtime = new RealtimeClient(Unused, new RealtimeClientOptions { Endpoint = _api });
        var session = await realtime.StartConversationSessionAsync("mini-omni");
        await session.ConfigureConversationSessionAsync(new RealtimeConversationSessionOptions
        {
            Instructions = instructions,
            AudioOptions = new RealtimeConversationSessionAudioOptions
            {
                InputAudioOptions = new RealtimeConversationSessionInputAudioOptions { TurnDetection = new RealtimeServerVadTurnDetection { SilenceDuration = TimeSpan.FromMilliseconds(500) } },
            },
        });
        byte[] speech = Pcm16Wave.ToPcm16Bytes(Resample([.. new float[4800], .. fixture.Question, .. new float[16000]], 16000, 24000));
        foreach (byte[] chunk in speech.Chunk(4800))
        {
            await session.SendInputAudioAsync(BinaryData.FromBytes(chunk));
        }

        return session;
    }

    // Waits for what the server does after its reply (a hang guard, not a timing assertion).
    private static async Task Eventually(Func<bool> condition, string what)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!condition())
        {
            await Task.Delay(20, guard.Token).ContinueWith(t => Assert.False(t.IsCanceled, $"still waiting for {what}"));
        }
    }

    [Fact]
    public async Task TheSdksRealtimeClientSpeaksAQuestionAndHearsTheAnswer()
    {
        using var session = await SpokenTurnUnderServerVadAsync("Be brief.");
        var kinds = new List<string>();
        var audio = new MemoryStream();
        var transcript = new StringBuilder();
        RealtimeServerUpdateResponseDone? done = null;
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await foreach (var update in session.ReceiveUpdatesAsync(guard.Token))
        {
            kinds.Add(update.GetType().Name.Replace("RealtimeServerUpdate", string.Empty, StringComparison.Ordinal));
            switch (update)
            {
                case RealtimeServerUpdateResponseOutputAudioDelta delta:
                    audio.Write(delta.Delta.ToArray());
                    break;
                case RealtimeServerUpdateResponseOutputAudioTranscriptDelta text:
                    transcript.Append(text.Delta);
                    break;
                case RealtimeServerUpdateResponseDone finished:
                    done = finished;
                    break;
            }

            if (done is not null)
            {
                break;
            }
        }

        Assert.Equal(["SessionCreated", "SessionUpdated", "InputAudioBufferSpeechStarted", "InputAudioBufferSpeechStopped", "InputAudioBufferCommitted"], kinds.Take(5));
        Assert.Contains("ResponseCreated", kinds);
        Assert.Contains("ResponseOutputItemAdded", kinds);
        Assert.Contains("ResponseOutputAudioTranscriptDone", kinds);
        Assert.True(audio.Length > 0 && audio.Length % 2 == 0);
        Assert.NotNull(done);
        Assert.Contains(done!.Response.Status, new RealtimeResponseStatus?[] { RealtimeResponseStatus.Completed, RealtimeResponseStatus.Incomplete });
        Assert.Equal(ServerFactory.AnswerTokens, done.Response.Usage?.OutputTokenCount);
    }

    [Fact]
    public async Task ARealtimeClientThatStopsReadingIsCutOffAndItsAnswerStopped()
    {
        // Each speech chunk is 10 s of audio (640 kB of base64): the socket's buffers fill after a few.
        var stopped = new TaskCompletionSource();
        var engine = new ScriptedEngine((request, token) => Endless(token, stopped));
        await using var factory = new ServerFactory(engine, new() { ["MiniOmni:Limits:RealtimeStallSeconds"] = "1", ["MiniOmni:Limits:RealtimeOutboundMessages"] = "16" });
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://{address.Authority}/v1/realtime"), CancellationToken.None);

        await Send(socket, """{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Talk forever."}]}}""");
        await Send(socket, """{"type":"response.create"}""");

        // Nothing is read: the server must stop the answer and close the session by itself.
        await stopped.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var sessions = factory.Services.GetRequiredService<RealtimeSessions>();
        for (int i = 0; i < 600 && sessions.Open > 0; i++)
        {
            await Task.Delay(50);
        }

        Assert.Equal(0, sessions.Open);
    }

    [Fact]
    public async Task ABadRealtimeEventIsAnErrorEventNamingItAndTheSessionGoesOn()
    {
        using var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("realtime");
        await socket.ConnectAsync(new Uri($"ws://{_api.Authority}/v1/realtime"), CancellationToken.None);
        Assert.Equal("realtime", socket.SubProtocol);
        Assert.Equal("session.created", (await Receive(socket)).GetProperty("type").GetString());

        await Send(socket, "{ not json");
        var notJson = await Receive(socket);
        await Send(socket, """{"type":"output_audio_buffer.clear"}""");
        var unsupported = await Receive(socket);
        await Send(socket, """{"type":"session.update","event_id":"evt_1","session":{"type":"realtime","tools":[{"type":"mcp","server_label":"m"}]}}""");
        var tools = await Receive(socket);
        await Send(socket, """{"type":"session.update","session":{"type":"realtime","instructions":"Be brief.","audio":{"input":{"turn_detection":null}}}}""");
        var updated = await Receive(socket);

        Assert.Equal("invalid_json", notJson.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("unsupported_event", unsupported.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("output_audio_buffer.clear", unsupported.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal("session.tools[0].type", tools.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("session.updated", updated.GetProperty("type").GetString());
        Assert.Equal("Be brief.", updated.GetProperty("session").GetProperty("instructions").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, updated.GetProperty("session").GetProperty("audio").GetProperty("input").GetProperty("turn_detection").ValueKind);
    }

    private static async Task<System.Text.Json.JsonElement> Receive(ClientWebSocket socket)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new byte[1 << 20];
        int length = 0;
        WebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer.AsMemory(length), guard.Token) is var r ? new WebSocketReceiveResult(r.Count, r.MessageType, r.EndOfMessage) : null!;
            length += result.Count;
        }
        while (!result.EndOfMessage);

        return System.Text.Json.JsonDocument.Parse(buffer.AsMemory(0, length)).RootElement.Clone();
    }

    [Fact]
    public async Task RealtimeSessionsOverTheLimitAreRefusedWith429()
    {
        await using var factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Limits:MaxRealtimeSessions"] = "1" });
        var address = factory.StartKestrel();
        await factory.WaitReadyAsync();
        using var first = new ClientWebSocket();
        await first.ConnectAsync(new Uri($"ws://{address.Authority}/v1/realtime"), CancellationToken.None);
        using var second = new ClientWebSocket { Options = { CollectHttpResponseDetails = true } };

        await Assert.ThrowsAsync<WebSocketException>(() => second.ConnectAsync(new Uri($"ws://{address.Authority}/v1/realtime"), CancellationToken.None));

        Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, second.HttpStatusCode);
    }

    private static async IAsyncEnumerable<MiniOmniEvent> Endless([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken token, TaskCompletionSource stopped)
    {
        using var registration = token.Register(() => stopped.TrySetResult());
        for (int i = 0; i < 1000; i++)
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return new SpeechChunk(new float[240000], 24000);
        }
    }

    private static Task Send(ClientWebSocket socket, string json) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    internal static float[] Resample(float[] samples, int from, int to)
    {
        var output = new float[(long)samples.Length * to / from];
        for (int i = 0; i < output.Length; i++)
        {
            double at = (double)i * from / to;
            int left = (int)at;
            int right = Math.Min(left + 1, samples.Length - 1);
            output[i] = (float)(samples[left] + (samples[right] - samples[left]) * (at - left));
        }

        return output;
    }

    // The chat client renders history and tools as template segments (markers apart from text); their text is what the model reads.
    private static string PreambleOf(MiniOmniRequest request) =>
        request.PreambleSegments is { } segments ? PreambleSegment.Concat(segments) : request.Preamble ?? "";
}
