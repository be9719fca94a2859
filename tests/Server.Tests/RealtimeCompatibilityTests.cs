using System.ClientModel;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Tests.Infrastructure;
using NAudio.Codecs;
using OpenAI.Realtime;
using SdkRealtimeClient = OpenAI.Realtime.RealtimeClient;
using SdkResponseStatus = OpenAI.Realtime.RealtimeResponseStatus;

namespace MiniOmni.SK.Server.Tests;

/// <summary>
/// What OpenAI's realtime clients do beyond asking and hearing, over a scripted engine: interruptions (truncate, then
/// retrieve), cancel reasons, usage details, beta clients, G.711, refused events named by their event_id.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class RealtimeCompatibilityTests : IAsyncLifetime
{
    private static readonly ApiKeyCredential Unused = new("not-needed-on-loopback");
    private ScriptedEngine _engine = null!;
    private ServerFactory _factory = null!;
    private Uri _address = null!;
    private TaskCompletionSource _release = new();

    public async Task InitializeAsync()
    {
        // Answers: four words written, then a second of speech (at 24 kHz) unless a test holds it; transcriptions: a sentence.
        _engine = new ScriptedEngine((request, token) => request.Task == MiniOmniTask.Asr
            ? ScriptedEngine.Play([new TextDelta(" what time is it"), ScriptedEngine.Completed(20, 6) with { PromptAudioPositions = 15, TextTokens = 5 }], token)
            : Answer(token));
        _release.SetResult();
        _factory = new ServerFactory(_engine);
        _address = _factory.StartKestrel();
        await _factory.WaitReadyAsync();
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task TheSdksInterruptionTruncatesThenRetrievesWithNoErrorAndTheItemKeepsWhatWasHeard()
    {
        using var session = await Sdk().StartConversationSessionAsync("mini-omni");
        await session.ConfigureConversationSessionAsync(new RealtimeConversationSessionOptions
        {
            AudioOptions = new RealtimeConversationSessionAudioOptions { InputAudioOptions = new RealtimeConversationSessionInputAudioOptions { TurnDetection = null } },
        });
        await session.AddItemAsync(new RealtimeMessageItem(RealtimeMessageRole.User, [new RealtimeInputTextMessageContentPart("Count to four.")]));
        await session.StartResponseAsync();
        var updates = new List<RealtimeServerUpdate>();
        var itemDone = await ReadUntil<RealtimeServerUpdateResponseOutputItemDone>(session, updates);
        await ReadUntil<RealtimeServerUpdateResponseDone>(session, updates);
        string itemId = itemDone.Item is RealtimeMessageItem answer ? answer.Id : throw new InvalidOperationException("no answer item");

        // As @openai/agents-realtime does when the user speaks over playback: truncate at what played, then retrieve.
        await session.TruncateItemAsync(itemId, 0, TimeSpan.FromMilliseconds(500));
        var truncated = await ReadUntil<RealtimeServerUpdateConversationItemTruncated>(session, updates);
        await session.RequestItemRetrievalAsync(itemId);
        var retrieved = await ReadUntil<RealtimeServerUpdateConversationItemRetrieved>(session, updates);

        Assert.DoesNotContain(updates, u => u is RealtimeServerUpdateError);
        Assert.Equal(RealtimeMessageStatus.Completed, ((RealtimeMessageItem)itemDone.Item).Status);
        Assert.Equal(itemId, truncated.ItemId);
        Assert.Equal(TimeSpan.FromMilliseconds(500), truncated.AudioEndTime);
        var kept = Assert.IsType<RealtimeMessageItem>(retrieved.Item);
        Assert.Equal(itemId, kept.Id);
        Assert.Equal(RealtimeMessageStatus.Incomplete, kept.Status);
        Assert.Equal("One two", Assert.IsType<RealtimeOutputAudioMessageContentPart>(Assert.Single(kept.Content)).Transcript);
        // The assistant item is announced in the conversation, as it starts and when it is done.
        Assert.Contains(updates, u => u is RealtimeServerUpdateConversationItemAdded { Item: RealtimeMessageItem { Role: var role } } && role == RealtimeMessageRole.Assistant);
        Assert.Contains(updates, u => u is RealtimeServerUpdateConversationItemDone { Item: RealtimeMessageItem { Id: var id } } && id == itemId);
    }

    [Fact]
    public async Task TheSdkReadsUsageWithTextAndAudioDetailsAndACancelSaysTheClientCancelled()
    {
        using var session = await Sdk().StartConversationSessionAsync("mini-omni");
        await session.ConfigureConversationSessionAsync(new RealtimeConversationSessionOptions
        {
            AudioOptions = new RealtimeConversationSessionAudioOptions { InputAudioOptions = new RealtimeConversationSessionInputAudioOptions { TurnDetection = null } },
        });
        await session.AddItemAsync(new RealtimeMessageItem(RealtimeMessageRole.User, [new RealtimeInputTextMessageContentPart("Count to four.")]));
        await session.StartResponseAsync();
        var updates = new List<RealtimeServerUpdate>();
        var completed = await ReadUntil<RealtimeServerUpdateResponseDone>(session, updates);

        _release = new TaskCompletionSource();
        await session.AddItemAsync(new RealtimeMessageItem(RealtimeMessageRole.User, [new RealtimeInputTextMessageContentPart("And again.")]));
        await session.StartResponseAsync();
        await ReadUntil<RealtimeServerUpdateResponseOutputAudioDelta>(session, updates);
        await session.CancelResponseAsync();
        var cancelled = await ReadUntil<RealtimeServerUpdateResponseDone>(session, updates);

        var usage = completed.Response.Usage;
        Assert.Equal(40, usage.InputTokenCount);
        Assert.Equal(30, usage.OutputTokenCount);
        Assert.Equal(25, usage.InputTokenDetails.AudioTokenCount);
        Assert.Equal(15, usage.InputTokenDetails.TextTokenCount);
        Assert.Equal(0, usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(6, usage.OutputTokenDetails.TextTokenCount);
        Assert.Equal(24, usage.OutputTokenDetails.AudioTokenCount);
        Assert.Equal(SdkResponseStatus.Cancelled, cancelled.Response.Status);
        Assert.Equal(RealtimeResponseStatusReason.ClientCancelled, cancelled.Response.StatusDetails.Reason);
        var cancelledItem = updates.OfType<RealtimeServerUpdateResponseOutputItemDone>().Last();
        Assert.Equal(RealtimeMessageStatus.Incomplete, ((RealtimeMessageItem)cancelledItem.Item).Status);
    }

    [Fact]
    public async Task MeaisRealtimeClientOverTheSdkGetsUsageDetailsAndTruncatesWithoutAnError()
    {
#pragma warning disable MEAI001 // MEAI's realtime client is experimental.
        using IRealtimeClient client = new OpenAIRealtimeClient(Sdk(), "mini-omni");
        await using var session = await client.CreateSessionAsync(new Microsoft.Extensions.AI.RealtimeSessionOptions { VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false } });
        await session.SendAsync(new CreateConversationItemRealtimeClientMessage(new RealtimeConversationItem([new TextContent("Count to four.")], null, ChatRole.User)));
        await session.SendAsync(new CreateResponseRealtimeClientMessage());
        var messages = new List<RealtimeServerMessage>();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        ResponseCreatedRealtimeServerMessage? done = null;
        string? itemId = null;
        await foreach (var message in session.GetStreamingResponseAsync(guard.Token))
        {
            messages.Add(message);
            if (message is ResponseOutputItemRealtimeServerMessage { Item.Role: var role } added && role == ChatRole.Assistant)
            {
                itemId ??= added.Item!.Id;
            }

            if (message is ResponseCreatedRealtimeServerMessage finished && finished.Type == RealtimeServerMessageType.ResponseDone)
            {
                done = finished;
                // MEAI 11.0 has no truncate message: its client sends a raw event as it is.
                await session.SendAsync(new RawMessage($$"""{"type":"conversation.item.truncate","item_id":"{{itemId}}","content_index":0,"audio_end_ms":250}"""));
                await session.SendAsync(new RawMessage($$"""{"type":"conversation.item.retrieve","item_id":"{{itemId}}"}"""));
            }

            if (message.RawRepresentation is RealtimeServerUpdateConversationItemRetrieved)
            {
                break;
            }
        }

        Assert.DoesNotContain(messages, m => m is ErrorRealtimeServerMessage);
        Assert.Equal(25, done?.Usage?.InputAudioTokenCount);
        Assert.Equal(15, done?.Usage?.InputTextTokenCount);
        Assert.Equal(6, done?.Usage?.OutputTextTokenCount);
        Assert.Equal(24, done?.Usage?.OutputAudioTokenCount);
        Assert.Contains(messages, m => m.RawRepresentation is RealtimeServerUpdateConversationItemTruncated { AudioEndTime.TotalMilliseconds: 250 });
#pragma warning restore MEAI001
    }

    [Fact]
    public async Task ABetaShapedSessionGetsItsDeltasUnderTheBetasNames()
    {
        using var socket = await Connect();
        var created = await Receive(socket);

        await Send(socket, """{"type":"session.update","session":{"modalities":["text","audio"],"voice":"alloy","input_audio_format":"pcm16","output_audio_format":"pcm16","turn_detection":null,"input_audio_transcription":null}}""");
        var updated = await Receive(socket);
        await Send(socket, """{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Count to four."}]}}""");
        await Send(socket, """{"type":"response.create","response":{"modalities":["text","audio"]}}""");
        var events = await ReceiveUntil(socket, "response.done");

        Assert.Equal("realtime", created.GetProperty("session").GetProperty("type").GetString());
        Assert.Equal("session.updated", updated.GetProperty("type").GetString());
        Assert.Equal("pcm16", updated.GetProperty("session").GetProperty("input_audio_format").GetString());
        Assert.Equal(JsonValueKind.Null, updated.GetProperty("session").GetProperty("input_audio_transcription").ValueKind);
        var types = events.Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Contains("conversation.item.created", types);
        Assert.Contains("response.audio.delta", types);
        Assert.Contains("response.audio_transcript.delta", types);
        Assert.Contains("response.audio_transcript.done", types);
        Assert.DoesNotContain(types, t => t!.StartsWith("response.output_audio", StringComparison.Ordinal) || t == "conversation.item.added" || t == "conversation.item.done");
        var response = events.Single(e => e.GetProperty("type").GetString() == "response.done").GetProperty("response");
        Assert.Equal(["text", "audio"], response.GetProperty("modalities").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("audio", response.GetProperty("output")[0].GetProperty("content")[0].GetProperty("type").GetString());
    }

    [Fact]
    public async Task TheBetaHeaderGetsTheBetasSessionAndTranscriptionSessionUpdateIsHonoured()
    {
        using var socket = await Connect(beta: true);
        var created = await Receive(socket);

        await Send(socket, """{"type":"transcription_session.update","session":{"input_audio_format":"g711_ulaw","input_audio_transcription":{"model":"whisper-1"},"turn_detection":null}}""");
        var updated = await Receive(socket);
        byte[] speech = [.. Tone(8000, 8000).Select(s => MuLawEncoder.LinearToMuLawSample((short)(s * 32767)))];
        await Send(socket, $$"""{"type":"input_audio_buffer.append","audio":"{{Convert.ToBase64String(speech)}}"}""");
        await Send(socket, """{"type":"input_audio_buffer.commit"}""");
        var events = await ReceiveUntil(socket, "conversation.item.input_audio_transcription.completed");

        Assert.Equal("pcm16", created.GetProperty("session").GetProperty("input_audio_format").GetString());
        Assert.Equal("transcription_session.updated", updated.GetProperty("type").GetString());
        Assert.Equal("g711_ulaw", updated.GetProperty("session").GetProperty("input_audio_format").GetString());
        Assert.Equal(" what time is it".Trim(), events[^1].GetProperty("transcript").GetString());
        Assert.DoesNotContain(events, e => e.GetProperty("type").GetString() == "response.created");
        // A second of 8 kHz mu-law was heard as a second at 16 kHz.
        var heard = _engine.Requests.Single(r => r.Task == MiniOmniTask.Asr).Audio.Length;
        Assert.InRange(heard, 16000 - 64, 16000 + 64);
    }

    [Fact]
    public async Task G711GoesInAndComesOutAt8kHz()
    {
        using var socket = await Connect();
        await Receive(socket);

        await Send(socket, """{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcma"},"turn_detection":null},"output":{"format":{"type":"audio/pcma"}}}}}""");
        var updated = await Receive(socket);
        byte[] speech = [.. Tone(8000, 8000).Select(s => ALawEncoder.LinearToALawSample((short)(s * 32767)))];
        await Send(socket, $$"""{"type":"input_audio_buffer.append","audio":"{{Convert.ToBase64String(speech)}}"}""");
        await Send(socket, """{"type":"input_audio_buffer.commit"}""");
        await Send(socket, """{"type":"response.create"}""");
        var events = await ReceiveUntil(socket, "response.done");

        Assert.Equal("audio/pcma", updated.GetProperty("session").GetProperty("audio").GetProperty("output").GetProperty("format").GetProperty("type").GetString());
        byte[] answer = [.. events.Where(e => e.GetProperty("type").GetString() == "response.output_audio.delta").SelectMany(e => Convert.FromBase64String(e.GetProperty("delta").GetString()!))];
        // The scripted second of 24 kHz speech goes out as about a second of 8 kHz A-law, one byte a sample, and not silence.
        Assert.InRange(answer.Length, 8000 - 64, 8000 + 64);
        Assert.True(answer.Select(b => Math.Abs((int)ALawDecoder.ALawToLinearSample(b))).Max() > 8000);
        var heard = _engine.Requests.Single(r => r.Task != MiniOmniTask.Asr).Audio.Length;
        Assert.InRange(heard, 16000 - 64, 16000 + 64);
    }

    [Fact]
    public async Task RefusedEventsEchoTheClientsEventIdAndCommitsNameTheItemBefore()
    {
        using var socket = await Connect();
        await Receive(socket);

        await Send(socket, """{"type":"conversation.item.truncate","event_id":"evt_no_item","audio_end_ms":10}""");
        var malformed = await Receive(socket);
        await Send(socket, """{"type":"conversation.item.retrieve","event_id":"evt_missing","item_id":"item_nope"}""");
        var missing = await Receive(socket);
        await Send(socket, """{"type":"session.update","session":{"type":"realtime","audio":{"input":{"turn_detection":null,"transcription":null}}}}""");
        var updated = await Receive(socket);
        await Send(socket, """{"type":"conversation.item.create","item":{"id":"item_first","type":"message","role":"user","content":[{"type":"input_text","text":"Hello."}]}}""");
        await Send(socket, $$"""{"type":"input_audio_buffer.append","audio":"{{Convert.ToBase64String(Pcm16(Tone(24000, 24000)))}}"}""");
        await Send(socket, """{"type":"input_audio_buffer.commit"}""");
        var events = await ReceiveUntil(socket, "input_audio_buffer.committed");
        await Send(socket, """{"type":"response.create"}""");
        events.AddRange(await ReceiveUntil(socket, "response.done"));

        Assert.Equal("evt_no_item", malformed.GetProperty("error").GetProperty("event_id").GetString());
        Assert.Equal("item_id", malformed.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("evt_missing", missing.GetProperty("error").GetProperty("event_id").GetString());
        Assert.Contains("item_nope", missing.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(JsonValueKind.Null, updated.GetProperty("session").GetProperty("audio").GetProperty("input").GetProperty("transcription").ValueKind);
        var committed = events.Single(e => e.GetProperty("type").GetString() == "input_audio_buffer.committed");
        Assert.Equal("item_first", committed.GetProperty("previous_item_id").GetString());
        // Transcription is off: the spoken turn is answered and never transcribed.
        Assert.DoesNotContain(_engine.Requests, r => r.Task == MiniOmniTask.Asr);
        Assert.DoesNotContain(events, e => e.GetProperty("type").GetString()!.StartsWith("conversation.item.input_audio_transcription", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TranscriptionUsageHasTheInputTokenDetailsTheAgentsSdkRequires()
    {
        using var socket = await Connect();
        await Receive(socket);

        await Send(socket, """{"type":"session.update","session":{"type":"realtime","audio":{"input":{"turn_detection":null,"transcription":{"model":"mini-omni"}}}}}""");
        await Receive(socket);
        await Send(socket, $$"""{"type":"input_audio_buffer.append","audio":"{{Convert.ToBase64String(Pcm16(Tone(24000, 24000)))}}"}""");
        await Send(socket, """{"type":"input_audio_buffer.commit"}""");
        await Send(socket, """{"type":"response.create"}""");
        var events = await ReceiveUntil(socket, "conversation.item.input_audio_transcription.completed");

        var usage = events[^1].GetProperty("usage");
        Assert.Equal("tokens", usage.GetProperty("type").GetString());
        Assert.Equal(20, usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(15, usage.GetProperty("input_token_details").GetProperty("audio_tokens").GetInt32());
        Assert.Equal(5, usage.GetProperty("input_token_details").GetProperty("text_tokens").GetInt32());
        Assert.Equal(6, usage.GetProperty("output_tokens").GetInt32());
        Assert.Equal(26, usage.GetProperty("total_tokens").GetInt32());
    }

    // Four words written, then a second of speech; it ends when the test lets it (at once, unless a test holds it).
    private async IAsyncEnumerable<MiniOmniEvent> Answer([EnumeratorCancellation] CancellationToken token)
    {
        foreach (var e in new MiniOmniEvent[] { new TextDelta("One two three four"), new SpeechChunk(Tone(24000, 24000), 24000) })
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return e;
        }

        await _release.Task.WaitAsync(token);
        yield return ScriptedEngine.Completed(40, 30) with { PromptAudioPositions = 25, TextTokens = 6 };
    }

    private SdkRealtimeClient Sdk() => new(Unused, new RealtimeClientOptions { Endpoint = new Uri(_address, "/v1") });

    private async Task<ClientWebSocket> Connect(bool beta = false)
    {
        var socket = new ClientWebSocket();
        if (beta)
        {
            socket.Options.SetRequestHeader("OpenAI-Beta", "realtime=v1");
        }

        await socket.ConnectAsync(new Uri($"ws://{_address.Authority}/v1/realtime"), CancellationToken.None);
        return socket;
    }

    private static async Task<T> ReadUntil<T>(RealtimeSessionClient session, List<RealtimeServerUpdate> seen)
        where T : RealtimeServerUpdate
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var update in session.ReceiveUpdatesAsync(guard.Token))
        {
            seen.Add(update);
            if (update is T wanted)
            {
                return wanted;
            }
        }

        throw new InvalidOperationException($"The session ended before {typeof(T).Name}.");
    }

    private static async Task<List<JsonElement>> ReceiveUntil(ClientWebSocket socket, string type)
    {
        var events = new List<JsonElement>();
        while (true)
        {
            var e = await Receive(socket);
            events.Add(e);
            if (e.GetProperty("type").GetString() == type)
            {
                return events;
            }
        }
    }

    private static async Task<JsonElement> Receive(ClientWebSocket socket)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
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

    private static Task Send(ClientWebSocket socket, string json) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

    private static float[] Tone(int samples, int rate) => [.. Enumerable.Range(0, samples).Select(i => 0.3f * (float)Math.Sin(2 * Math.PI * 440 * i / rate))];

    private static byte[] Pcm16(float[] samples) => [.. samples.SelectMany(s => BitConverter.GetBytes((short)(s * 32767)))];

#pragma warning disable MEAI001
    // A client event MEAI has no message for, sent raw (MEAI's OpenAI session sends a string representation as it is).
    private sealed class RawMessage : RealtimeClientMessage
    {
        public RawMessage(string json) => RawRepresentation = json;
    }
#pragma warning restore MEAI001
}
