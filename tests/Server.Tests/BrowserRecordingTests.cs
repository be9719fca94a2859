using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Tests.Infrastructure;

namespace MiniOmni.SK.Server.Tests;

/// <summary>
/// The recordings browsers make (WebM/Opus from MediaRecorder, Ogg/Opus) reach the model through the API as
/// <see cref="AudioDecoder"/> decodes them: the server passes their media type through and adds nothing of its own.
/// The fixtures and the decoding come with the audio work (tests/Fixtures/audio).
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class BrowserRecordingTests(FixtureEngine fixture)
{
    [Theory]
    [InlineData("chrome-mediarecorder.webm", "audio/webm;codecs=opus")]
    [InlineData("tones-mono-16k.ogg", "audio/ogg;codecs=opus")]
    public async Task ATranscriptionOfABrowserRecordingIsTheAsrOfWhatTheDecoderHears(string file, string mediaType)
    {
        byte[] recording = File.ReadAllBytes(Fixture.Audio(file));
        using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();

        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(recording) { Headers = { ContentType = MediaTypeHeaderValue.Parse(mediaType) } }, "file", file },
            { new StringContent("whisper-1"), "model" },
            { new StringContent("text"), "response_format" },
        };
        var response = await client.PostAsync("/v1/audio/transcriptions", form);

        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        var direct = new StringBuilder();
        await foreach (var item in fixture.Engine.GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = AudioDecoder.Decode(recording, mediaType), MaxTokens = ServerFactory.AnswerTokens }))
        {
            direct.Append((item as TextDelta)?.Text);
        }

        Assert.Equal(direct.ToString().Trim(), body);
    }

    [Theory]
    [InlineData("chrome-mediarecorder.webm", "webm")]
    [InlineData("tones-mono-16k.ogg", "ogg")]
    public async Task AChatQuestionRecordedByABrowserIsAnswered(string file, string format)
    {
        using var factory = new ServerFactory(fixture.Engine);
        using var client = factory.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            modalities = new[] { "text" },
            max_tokens = 8,
            messages = new[] { new { role = "user", content = new object[] { new { type = "input_audio", input_audio = new { data = Convert.ToBase64String(File.ReadAllBytes(Fixture.Audio(file))), format } } } } },
        });

        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        Assert.Equal(8, JsonDocument.Parse(body).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }
}
