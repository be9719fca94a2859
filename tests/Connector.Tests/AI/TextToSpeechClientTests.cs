using Microsoft.Extensions.AI;
using MiniOmni.SK.AI;
using MiniOmni.SK.Engine;
using static MiniOmni.SK.Connector.Tests.AI.ScriptedEngine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>The text-to-speech client's modes, sentence streaming and options, over a Moq-scripted engine.</summary>
public sealed class TextToSpeechClientTests
{
    [Fact]
    public async Task ByDefaultTheTextIsReadAloudAndOnlyTheSpeechComesBack()
    {
        var engine = new ScriptedEngine(new TextDelta("Hello"), SpeechOf(0.5f, 10), Completed(steps: 30, AnswerStopReason.Budget));

        var response = await new MiniOmniTextToSpeechClient(engine.Object).GetAudioAsync("Hello.");

        Assert.Equal(MiniOmniTask.ReadAloud, engine.Request.Task);
        Assert.Equal("Hello.", engine.Request.Text);
        var wav = Assert.IsType<DataContent>(Assert.Single(response.Contents));
        Assert.Equal(44 + 2 * 10, wav.Data.Length);
        Assert.Equal(30, response.Usage?.OutputTokenCount);
    }

    [Fact]
    public async Task AskedToAnswerItSpeaksMiniOmnisAnswerWithItsText()
    {
        var engine = new ScriptedEngine(new TextDelta("I am "), SpeechOf(0.5f), new TextDelta("Omni."), Completed());
        var options = new TextToSpeechOptions().WithMiniOmniSpeechMode(MiniOmniSpeechMode.Answer);

        var response = await new MiniOmniTextToSpeechClient(engine.Object).GetAudioAsync("Who are you? Tell me.", options);

        Assert.Equal(MiniOmniTask.T1A2, engine.Request.Task);
        Assert.Equal("Who are you? Tell me.", engine.Request.Text); // answered whole, not split
        Assert.Equal("I am Omni.", Assert.Single(response.Contents.OfType<TextContent>()).Text);
    }

    [Fact]
    public async Task LongTextIsSpokenOneAnswerPerSentenceInOrder()
    {
        // Each sentence's engine answer speaks its own index; later sentences answer faster than earlier ones.
        var engine = new ScriptedEngine(request => Sentence(request.Text!));
        static IEnumerable<MiniOmniEvent> Sentence(string text)
        {
            float index = text.StartsWith("One", StringComparison.Ordinal) ? 1 : text.StartsWith("Two", StringComparison.Ordinal) ? 2 : 3;
            if (index == 1)
            {
                Thread.Sleep(50);
            }

            yield return SpeechOf(index / 10);
            yield return SpeechOf(index / 10);
            yield return Completed(steps: 5);
        }

        var updates = new List<TextToSpeechResponseUpdate>();
        await foreach (var update in new MiniOmniTextToSpeechClient(engine.Object).GetStreamingAudioAsync("One sentence. Two sentences!\nThree, at last?"))
        {
            updates.Add(update);
        }

        Assert.Equal(["One sentence.", "Three, at last?", "Two sentences!"], engine.Requests.Select(r => r.Text).Order(StringComparer.Ordinal));
        var audio = updates[..^1];
        Assert.All(audio, u => Assert.Equal(TextToSpeechResponseUpdateKind.AudioUpdating, u.Kind));
        Assert.All(audio, u => Assert.False(Assert.IsType<DataContent>(Assert.Single(u.Contents)).Data.IsEmpty));
        Assert.Equal([0.1f, 0.1f, 0.2f, 0.2f, 0.3f, 0.3f], audio.Select(u => ((SpeechChunk)u.RawRepresentation!).Samples[0]));
        Assert.Equal(TextToSpeechResponseUpdateKind.SessionClose, updates[^1].Kind);
        Assert.Equal(15, Assert.IsType<UsageContent>(Assert.Single(updates[^1].Contents)).Details.OutputTokenCount);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
    }

    [Fact]
    public async Task TheNextSentenceIsComputedWhileTheCurrentOneIsHeard()
    {
        ScriptedEngine? engine = null;
        engine = new ScriptedEngine(request => request.Text!.StartsWith("First", StringComparison.Ordinal) ? First() : [SpeechOf(0.2f), Completed()]);
        IEnumerable<MiniOmniEvent> First()
        {
            yield return SpeechOf(0.1f);
            // The first sentence ends only once the second has been asked for: without look-ahead this waits in vain.
            Assert.True(SpinWait.SpinUntil(() => engine!.Requests.Count == 2, TimeSpan.FromSeconds(20)), "the second sentence was not started while the first was heard");
            yield return SpeechOf(0.1f);
            yield return Completed();
        }

        var response = await new MiniOmniTextToSpeechClient(engine.Object).GetAudioAsync("First things first. Second things second.");

        Assert.Equal(2, engine.Requests.Count);
        Assert.Equal(44 + 2 * 12, Assert.IsType<DataContent>(Assert.Single(response.Contents)).Data.Length);
    }

    [Fact]
    public async Task ACallerThatStopsCancelsTheSentencesUnderWay()
    {
        var engine = new ScriptedEngine(request => [SpeechOf(0.1f), SpeechOf(0.1f), SpeechOf(0.1f), Completed()]);

        await foreach (var update in new MiniOmniTextToSpeechClient(engine.Object).GetStreamingAudioAsync("One. Two. Three."))
        {
            break;
        }

        Assert.InRange(engine.Requests.Count, 1, 2);
        Assert.True(SpinWait.SpinUntil(() => engine.Tokens.All(t => t.IsCancellationRequested), TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task OptionsReachTheEngineAndWhatMiniOmniCannotDoIsRefused()
    {
        var engine = new ScriptedEngine(Completed());
        var client = new MiniOmniTextToSpeechClient(engine.Object);
        var options = new TextToSpeechOptions
        {
            VoiceId = "nova", // one voice: ignored
            AdditionalProperties = new()
            {
                [MiniOmniAudioOptions.TemperatureKey] = 0.5,
                [MiniOmniAudioOptions.TopKKey] = "7",
                [MiniOmniAudioOptions.SeedKey] = 3L,
                [MiniOmniAudioOptions.MaxTokensKey] = 40,
            },
        };

        await client.GetAudioAsync("Hello.", options);

        Assert.Equal(new SamplingOptions { Temperature = 0.5f, TopK = 7, Seed = 3 }, engine.Request.Sampling);
        Assert.Equal(40, engine.Request.MaxTokens);
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetAudioAsync("Hi.", new TextToSpeechOptions { Speed = 1.5f }));
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetAudioAsync("Hi.", new TextToSpeechOptions { AudioFormat = "opus" }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetAudioAsync(" "));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetAudioAsync("... !"));
        var mode = await Assert.ThrowsAsync<ArgumentException>(() => client.GetAudioAsync("Hi.", new TextToSpeechOptions { AdditionalProperties = new() { [MiniOmniAudioOptions.SpeechModeKey] = "sing" } }));
        Assert.Contains("sing", mode.Message);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.GetAudioAsync("Hi.", new TextToSpeechOptions { AdditionalProperties = new() { [MiniOmniAudioOptions.MaxTokensKey] = -1 } }));
        Assert.Single(engine.Requests);
    }

    [Fact]
    public void GetServiceFollowsMeaisProviders()
    {
        var engine = new ScriptedEngine(Completed());
        using var client = new MiniOmniTextToSpeechClient(engine.Object);

        Assert.Equal("miniomni", client.GetService<TextToSpeechClientMetadata>()?.ProviderName);
        Assert.Same(engine.Object, client.GetService<IMiniOmniEngine>());
        Assert.Same(client, client.GetService<IDisposable>());
        Assert.Same(client, client.GetService<object>());
        Assert.Null(client.GetService<IMiniOmniEngine>("key"));
    }
}

/// <summary>Where long text is split to be read aloud.</summary>
public sealed class SentenceSplitterTests
{
    [Theory]
    [InlineData("Hello there. How are you?", new[] { "Hello there.", "How are you?" })]
    [InlineData("Wait!\"He said so.\" Then: (it ended.) Fine", new[] { "Wait!\"He said so.\"", "Then: (it ended.)", "Fine" })]
    [InlineData("Dr. Smith paid $3.50 at 5 p.m. for tea, e.g. green. J. K. Rowling wrote.", new[] { "Dr. Smith paid $3.50 at 5 p.m. for tea, e.g. green.", "J. K. Rowling wrote." })]
    [InlineData("First line\nSecond line\r\n\r\nThird… fourth", new[] { "First line", "Second line", "Third…", "fourth" })]
    [InlineData("你好。今天好吗？好", new[] { "你好。", "今天好吗？", "好" })]
    [InlineData("  ... !  ", new string[0])]
    public void SentencesEndWhereAReaderWouldPause(string text, string[] expected)
    {
        Assert.Equal(expected, SentenceSplitter.Split(text));
    }

    [Fact]
    public void ALongSentenceIsCutAtAClauseOrASpaceWithinTheLimit()
    {
        string text = "one two three, four five six seven; eight nine ten eleven twelve";

        var pieces = SentenceSplitter.Split(text, maxCharacters: 20);

        Assert.All(pieces, p => Assert.InRange(p.Length, 1, 20));
        Assert.Equal(text.Replace(",", "", StringComparison.Ordinal).Replace(";", "", StringComparison.Ordinal).Split(' '), string.Join(" ", pieces).Replace(",", "", StringComparison.Ordinal).Replace(";", "", StringComparison.Ordinal).Split(' '));
        Assert.Equal("one two three,", pieces[0]);
        Assert.All(SentenceSplitter.Split(new string('x', 45), maxCharacters: 20), p => Assert.InRange(p.Length, 1, 20));
    }
}
