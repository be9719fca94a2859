using System.Text;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Connector.Tests.Engine;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>Each public client over the fixture model, against the engine called directly.</summary>
public sealed class ClientsEndToEndTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private const int Steps = 40;
    private static readonly byte[] QuestionWav = File.ReadAllBytes(Fixture.Question);

    [Fact]
    public async Task TheChatClientAnswersASpokenQuestionWithTheEnginesTextAndOneWav()
    {
        var direct = await Direct(new MiniOmniRequest { Audio = fixture.Question, MaxTokens = Steps });
        using var client = fixture.Engine.AsIChatClient();

        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(QuestionWav, "audio/wav")])], new ChatOptions { MaxOutputTokens = Steps });

        Assert.Equal(direct.Text, response.Text);
        var wav = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<DataContent>());
        float[] speech = AudioDecoder.Decode(wav.Data, wav.MediaType, new AudioInputOptions { TruncateToWindow = true });
        Assert.True(speech.Length > 0);
        Assert.Equal(44 + 2 * direct.Samples, wav.Data.Length);
        Assert.Equal(direct.Completed.Steps, response.Usage?.OutputTokenCount);
    }

    [Fact]
    public async Task StreamedChatUpdatesCarryEverySpeechSampleAsPcm16Chunks()
    {
        var direct = await Direct(new MiniOmniRequest { Audio = fixture.Question, MaxTokens = Steps });
        using var client = fixture.Engine.AsIChatClient();

        var chunks = new List<DataContent>();
        var text = new StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(QuestionWav, "audio/wav")])], new ChatOptions { MaxOutputTokens = Steps }))
        {
            chunks.AddRange(update.Contents.OfType<DataContent>());
            text.Append(update.Text);
        }

        Assert.NotEmpty(chunks);
        Assert.All(chunks, c => Assert.Equal(MiniOmniMediaTypes.SpeechChunk, c.MediaType));
        Assert.Equal(2 * direct.Samples, chunks.Sum(c => c.Data.Length));
        Assert.Equal(direct.Text, text.ToString());
    }

    [Fact]
    public async Task SpeechToTextGivesTheAsrTranscript()
    {
        var direct = await Direct(new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = fixture.Question });
        using var client = fixture.Engine.AsISpeechToTextClient();
        using var audio = new MemoryStream(QuestionWav);

        var response = await client.GetTextAsync(audio);

        Assert.Equal(direct.Text, response.Text);
        Assert.Equal("miniomni", client.GetService<SpeechToTextClientMetadata>()?.ProviderName);
    }

    [Fact]
    public async Task TextToSpeechReadsTheTextAloudAsAWav()
    {
        var direct = await Direct(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = "What is your name?" });
        using var client = fixture.Engine.AsITextToSpeechClient();

        var response = await client.GetAudioAsync("What is your name?");

        var wav = Assert.IsType<DataContent>(Assert.Single(response.Contents));
        Assert.Equal("audio/wav", wav.MediaType);
        Assert.Equal(44 + 2 * direct.Samples, wav.Data.Length);
        Assert.Equal(direct.Completed.Steps, response.Usage?.OutputTokenCount);
    }

    [Fact]
    public async Task TextToSpeechAskedToAnswerSpeaksTheAnswerWithItsText()
    {
        var direct = await Direct(new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "What is your name?", MaxTokens = Steps });
        using var client = fixture.Engine.AsITextToSpeechClient();
        var options = new TextToSpeechOptions { AdditionalProperties = new() { [MiniOmniAudioOptions.MaxTokensKey] = Steps } }.WithMiniOmniSpeechMode(MiniOmniSpeechMode.Answer);

        var response = await client.GetAudioAsync("What is your name?", options);

        var wav = Assert.Single(response.Contents.OfType<DataContent>());
        Assert.Equal(44 + 2 * direct.Samples, wav.Data.Length);
        Assert.Equal(direct.Text, Assert.Single(response.Contents.OfType<TextContent>()).Text);
    }

    [Fact]
    public async Task LongTextIsReadAloudSentenceBySentenceInOrder()
    {
        string[] sentences = ["What is your name?", "How do you make a cup of tea?", "Tea is good."];
        var alone = new List<float[]>();
        foreach (string sentence in sentences)
        {
            alone.Add(await DirectSpeech(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = sentence }));
        }

        using var client = fixture.Engine.AsITextToSpeechClient();
        var chunks = new List<TextToSpeechResponseUpdate>();
        await foreach (var update in client.GetStreamingAudioAsync(string.Join(" ", sentences)))
        {
            chunks.Add(update);
        }

        // Each sentence's speech, whole and in order: the chunks of one answer, then the next's.
        var answers = chunks.Where(u => u.RawRepresentation is SpeechChunk).Select(u => (SpeechChunk)u.RawRepresentation!).ToList();
        Assert.Equal(alone.Sum(a => a.Length), answers.Sum(c => c.Samples.Length));
        Assert.Equal(TextToSpeechResponseUpdateKind.SessionClose, chunks[^1].Kind);
        var usage = Assert.IsType<UsageContent>(Assert.Single(chunks[^1].Contents)).Details;
        int[] tokens = [.. sentences.Select(s => fixture.Engine.Prepare(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = s }).Generation.ForcedText!.Tokens.Count)];
        Assert.Equal(tokens.Sum(MiniOmniEngine.ReadAloudSteps), usage.OutputTokenCount);
        Assert.Equal(alone.SelectMany(a => a), answers.SelectMany(c => c.Samples));
    }

    [Fact]
    public async Task TooLongAHistoryIsAClearErrorNamingTheConversation()
    {
        using var client = fixture.Engine.AsIChatClient();
        var history = Enumerable.Range(0, 200).SelectMany(i => new[] { new ChatMessage(ChatRole.User, $"Question number {i} about tea?"), new ChatMessage(ChatRole.Assistant, $"Answer number {i} about tea.") });

        var error = await Assert.ThrowsAsync<ContextOverflowException>(() => client.GetResponseAsync([.. history, new ChatMessage(ChatRole.User, "And now?")], new ChatOptions { MaxOutputTokens = 50 }));

        Assert.Contains("conversation is too long", error.Message);
        Assert.True(error.PromptPositions > 1024);
    }

    [Fact]
    public async Task SeveralClientsOverOneEngineAtOnceGiveTheirSoloResults()
    {
        using var chat = fixture.Engine.AsIChatClient();
        using var speechToText = fixture.Engine.AsISpeechToTextClient();
        using var textToSpeech = fixture.Engine.AsITextToSpeechClient();
        var calls = new Func<Task<string>>[]
        {
            async () => (await chat.GetResponseAsync("How do you make a cup of tea?", new ChatOptions { MaxOutputTokens = 30 })).Text,
            async () => (await chat.GetResponseAsync([new ChatMessage(ChatRole.User, [new DataContent(QuestionWav, "audio/wav")])], new ChatOptions { MaxOutputTokens = 30 })).Text,
            async () => (await speechToText.GetTextAsync(new MemoryStream(QuestionWav))).Text,
            async () => Convert.ToBase64String((await textToSpeech.GetAudioAsync("What is your name?")).Contents.OfType<DataContent>().Single().Data.ToArray()),
        };
        var solo = new List<string>();
        foreach (var call in calls)
        {
            solo.Add(await call());
        }

        var together = await Task.WhenAll(calls.Select(call => Task.Run(call)));

        Assert.Equal(solo, together);
    }

    private async Task<float[]> DirectSpeech(MiniOmniRequest request)
    {
        var speech = new List<float>();
        await foreach (var item in fixture.Engine.GenerateAsync(request))
        {
            if (item is SpeechChunk chunk)
            {
                speech.AddRange(chunk.Samples);
            }
        }

        return [.. speech];
    }

    private async Task<(string Text, long Samples, AnswerCompleted Completed)> Direct(MiniOmniRequest request)
    {
        var text = new StringBuilder();
        long samples = 0;
        AnswerCompleted? completed = null;
        await foreach (var item in fixture.Engine.GenerateAsync(request))
        {
            switch (item)
            {
                case TextDelta delta:
                    text.Append(delta.Text);
                    break;
                case SpeechChunk chunk:
                    samples += chunk.Samples.Length;
                    break;
                case AnswerCompleted done:
                    completed = done;
                    break;
            }
        }

        return (text.ToString(), samples, completed!);
    }
}
