using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Server.Tests.Infrastructure;
using OpenAI;
using OpenAI.Audio;

namespace MiniOmni.SK.Server.Tests;

/// <summary>Recordings longer than Mini-Omni hears: cut into windows, transcribed each, stitched, with real times.</summary>
[Collection(ServerCollection.Name)]
public sealed class LongTranscriptionTests(FixtureEngine fixture) : IAsyncLifetime
{
    private const int Rate = 16000;
    private ServerFactory _factory = null!;
    private Uri _address = null!;

    public async Task InitializeAsync()
    {
        _factory = new ServerFactory(fixture.Engine, new() { ["MiniOmni:Limits:MaxAnswerTokens"] = "8" });
        _address = _factory.StartKestrel();
        await _factory.WaitReadyAsync();
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task A95SecondRecordingComesBackAsSeveralSegmentsWithIncreasingTimes()
    {
        var (wav, pauses) = Recording95Seconds();
        var sdk = new AudioClient("whisper-1", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(_address, "/v1") });

        AudioTranscription transcription = await sdk.TranscribeAudioAsync(new MemoryStream(wav), "meeting.wav", new AudioTranscriptionOptions
        {
            ResponseFormat = AudioTranscriptionFormat.Verbose,
            TimestampGranularities = AudioTimestampGranularities.Segment,
        });

        Assert.Equal(95, transcription.Duration!.Value.TotalSeconds, 0.01);
        Assert.InRange(transcription.Segments.Count, 4, 7);
        for (int i = 1; i < transcription.Segments.Count; i++)
        {
            var previous = transcription.Segments[i - 1];
            var segment = transcription.Segments[i];
            Assert.True(segment.StartTime >= previous.EndTime, $"segment {i} starts ({segment.StartTime}) after segment {i - 1} ends ({previous.EndTime})");
            Assert.True(segment.EndTime > segment.StartTime);
            Assert.True(segment.EndTime - segment.StartTime <= TimeSpan.FromSeconds(30));
            Assert.Equal(i, segment.Id);
            // Speech starts where a sound of the recording starts: right after one of its pauses.
            double seconds = segment.StartTime.TotalSeconds;
            Assert.Contains(pauses, p => Math.Abs(seconds - p.End) < 0.05);
        }

        Assert.All(transcription.Segments, s => Assert.NotEmpty(s.Text));
        Assert.Equal(string.Join(" ", transcription.Segments.Select(s => s.Text)), transcription.Text);
        Assert.True(transcription.Segments[^1].EndTime > TimeSpan.FromSeconds(80));
    }

    [Fact]
    public async Task StreamingGivesOneDeltaPerWindowAndSubtitlesOneCuePerWindow()
    {
        var (wav, _) = Recording95Seconds();
        using var http = new HttpClient { BaseAddress = _address };

        string events = await (await http.PostAsync("/v1/audio/transcriptions", Form(wav, "json", stream: true))).Content.ReadAsStringAsync();
        string srt = await (await http.PostAsync("/v1/audio/transcriptions", Form(wav, "srt"))).Content.ReadAsStringAsync();
        string vtt = await (await http.PostAsync("/v1/audio/transcriptions", Form(wav, "vtt"))).Content.ReadAsStringAsync();

        // The recording's windows, as SpeechWindows cuts them: the server is a thin layer over the client that does.
        var samples = AudioDecoder.Decode(wav, "audio/wav", new AudioInputOptions { MaxDuration = TimeSpan.FromMinutes(2) });
        int windows = SpeechWindows.Split(samples).Count(w => !w.IsSilent);
        var deltas = events.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement).ToList();
        Assert.True(windows >= 4);
        Assert.Equal(windows, deltas.Count(e => e.GetProperty("type").GetString() == "transcript.text.delta"));
        Assert.Equal("transcript.text.done", deltas[^1].GetProperty("type").GetString());
        Assert.Equal(windows, srt.Split('\n').Count(l => l.Contains(" --> ", StringComparison.Ordinal)));
        Assert.StartsWith("WEBVTT", vtt, StringComparison.Ordinal);
        Assert.Equal(windows, vtt.Split('\n').Count(l => l.Contains(" --> ", StringComparison.Ordinal)));
        Assert.Contains("00:00:00,000 --> ", srt, StringComparison.Ordinal);
        Assert.DoesNotContain("00:00:00,000 --> 00:01:35,000", srt, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChatAudioOver30SecondsIsA400NamingTheModelsLimit()
    {
        var (wav, _) = Recording95Seconds();
        using var http = new HttpClient { BaseAddress = _address };

        var response = await http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "mini-omni",
            messages = new[] { new { role = "user", content = new object[] { new { type = "input_audio", input_audio = new { data = Convert.ToBase64String(wav), format = "wav" } } } } },
        });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = body.RootElement.GetProperty("error");
        Assert.Equal("audio_too_long", error.GetProperty("code").GetString());
        Assert.Contains("at most 30 s", error.GetProperty("message").GetString());
    }

    private static MultipartFormDataContent Form(byte[] wav, string format, bool stream = false) => new()
    {
        { new ByteArrayContent(wav) { Headers = { ContentType = new MediaTypeHeaderValue("audio/wav") } }, "file", "meeting.wav" },
        { new StringContent("whisper-1"), "model" },
        { new StringContent(format), "response_format" },
        { new StringContent(stream ? "true" : "false"), "stream" },
    };

    /// <summary>95 s: the fixture's question and a tone, each followed by a pause, over and over; and the pauses, in seconds.</summary>
    private (byte[] Wav, List<(double Start, double End)> Pauses) Recording95Seconds()
    {
        var samples = new float[95 * Rate];
        var pauses = new List<(double, double)>();
        int at = 0, turn = 0;
        while (at < samples.Length)
        {
            float[] sound = turn++ % 2 == 0
                ? fixture.Question
                : [.. Enumerable.Range(0, 4 * Rate).Select(i => (float)(0.2 * Math.Sin(2 * Math.PI * (220 + (30 * turn)) * i / Rate)))];
            int length = Math.Min(sound.Length, samples.Length - at);
            sound.AsSpan(0, length).CopyTo(samples.AsSpan(at));
            at += length;
            int pause = Math.Min((int)(1.5 * Rate), samples.Length - at);
            pauses.Add((at / (double)Rate, (at + pause) / (double)Rate));
            at += pause;
        }

        using var stream = new MemoryStream();
        Pcm16Wave.Write(stream, samples, Rate);
        return (stream.ToArray(), pauses);
    }
}
