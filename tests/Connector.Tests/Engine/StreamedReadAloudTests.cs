using System.Runtime.CompilerServices;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.Engine;

/// <summary>
/// Read-aloud fed as a thinker writes: the tokens handed out as chunks come equal the whole text's tokens wherever the
/// chunks are cut, and the answer spoken from a stream is step for step the answer to the whole text, on the fixture model.
/// </summary>
public sealed class StreamedReadAloudTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    public static TheoryData<string> Texts => new()
    {
        "Hello there, how are you today? I'm fine; they'll say it's 1234 degrees.",
        "Spaces   and\ttabs\n\nnew lines  \n end  ",
        "Café déjà vu: naïve coöperation, 東京は晴れ、中文也可以。",
        "Emoji 👍🏽 and 𝐀𝐁𝐂 letters, 𝟙𝟚 digits, and 😀😀!",
        "don't WON'T I'D we've... !!! ?? 3.14159 -- e=mc²",
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void EveryCutIntoTwoChunksGivesTheWholeTextsTokens(string text)
    {
        int[] whole = fixture.Engine.TokenizeText(text);
        for (int cut = 0; cut <= text.Length; cut++)
        {
            Assert.Equal(whole, Stream(text[..cut], text[cut..]));
        }
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void CharacterByCharacterAndRandomChunksGiveTheWholeTextsTokens(string text)
    {
        int[] whole = fixture.Engine.TokenizeText(text);
        // One UTF-16 unit at a time splits every surrogate pair.
        Assert.Equal(whole, Stream([.. text.Select(c => c.ToString())]));
        var random = new Random(22);
        for (int round = 0; round < 20; round++)
        {
            var chunks = new List<string>();
            for (int at = 0; at < text.Length;)
            {
                int length = Math.Min(random.Next(1, 7), text.Length - at);
                chunks.Add(text.Substring(at, length));
                at += length;
            }

            Assert.Equal(whole, Stream([.. chunks]));
        }
    }

    [Fact]
    public void TokensAreHandedOutOnceTheTextAfterThemShowsTheyEnd()
    {
        var tokenizer = new IncrementalTextTokenizer(fixture.Engine.TokenizeText);

        Assert.Empty(tokenizer.Add("Hel"));
        Assert.Empty(tokenizer.Add("lo")); // "Hello" could still become "Hellooo"
        Assert.Equal(fixture.Engine.TokenizeText("Hello"), tokenizer.Add(" th"));
        Assert.Equal(fixture.Engine.TokenizeText(" there,"), tokenizer.Add("ere, h"));
        Assert.Equal(fixture.Engine.TokenizeText(" h"), tokenizer.Finish());
    }

    [Fact]
    public void PiecesFollowQwen2sPreTokenizer()
    {
        Assert.Equal(["Hello", " world", "!!", "  ", " x", "1", "2", "'s"], IncrementalTextTokenizer.Pieces("Hello world!!   x12's"));
        // A letter outside the basic plane is one letter, as llama.cpp reads code points, not UTF-16 units.
        Assert.Equal(["a𝐀b", " ", "𝟙", "👍🏽"], IncrementalTextTokenizer.Pieces("a𝐀b 𝟙👍🏽"));
    }

    [Fact]
    public async Task AStreamedAnswerIsStepForStepTheWholeTextReadAloud()
    {
        const string Answer = "Sure: the café opens at 9, and it's 東京 style.";
        var whole = Assert.IsType<AnswerCompleted>((await Collect(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = Answer }))[^1]);

        var streamed = await Collect(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = Answer, AnswerText = Slowly(["Su", "re: the caf", "é op", "ens at 9, and it's 東", "京 style."], TimeSpan.FromMilliseconds(30)) });

        // Same prompt, same forced text, the waits left out: the same steps, audio codes and all, and the same budget.
        var answer = Assert.IsType<AnswerCompleted>(streamed[^1]);
        Assert.Equal(whole.Tokens, answer.Tokens);
        Assert.Equal(MiniOmniEngine.ReadAloudSteps(fixture.Engine.TokenizeText(Answer).Length), answer.Steps);
        Assert.Equal(Answer, string.Concat(streamed.OfType<TextDelta>().Select(d => d.Text)));
    }

    [Fact]
    public async Task AnErrorOfTheTextEndsTheAnswerWithThatError()
    {
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => Collect(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = "Hi?", AnswerText = Failing() }));

        Assert.Equal("thinker down", error.Message);

        static async IAsyncEnumerable<string> Failing()
        {
            yield return "Hello, I think ";
            await Task.Delay(20);
            throw new HttpRequestException("thinker down");
        }
    }

    [Fact]
    public async Task StoppingTheAnswerStopsReadingTheText()
    {
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cancellation = new CancellationTokenSource();
        var request = new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = "Hi?", AnswerText = Endless(stopped) };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in fixture.Engine.GenerateAsync(request, cancellation.Token))
            {
                if (item is SpeechChunk or TextDelta)
                {
                    cancellation.Cancel();
                }
            }
        });

        await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task AnEmptyStreamSaysNothing()
    {
        var events = await Collect(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, Text = "Hi?", AnswerText = Slowly([], TimeSpan.Zero) });

        var completed = Assert.IsType<AnswerCompleted>(Assert.Single(events));
        Assert.Equal(0, completed.Steps);
    }

    [Fact]
    public void AStreamedTextIsForReadAloudAndNeedsItsQuestion()
    {
        Assert.Throws<ArgumentException>(() => fixture.Engine.Prepare(new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = "Hi?", AnswerText = Slowly(["x"], TimeSpan.Zero) }));
        var missing = Assert.Throws<ArgumentException>(() => fixture.Engine.Prepare(new MiniOmniRequest { Task = MiniOmniTask.ReadAloud, AnswerText = Slowly(["x"], TimeSpan.Zero) }));
        Assert.Contains("question", missing.Message);
    }

    private int[] Stream(params string[] chunks)
    {
        var tokenizer = new IncrementalTextTokenizer(fixture.Engine.TokenizeText);
        var tokens = new List<int>();
        foreach (string chunk in chunks)
        {
            tokens.AddRange(tokenizer.Add(chunk));
        }

        tokens.AddRange(tokenizer.Finish());
        return [.. tokens];
    }

    private static async IAsyncEnumerable<string> Slowly(string[] chunks, TimeSpan pause, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (string chunk in chunks)
        {
            await Task.Delay(pause, cancellationToken);
            yield return chunk;
        }
    }

    private static async IAsyncEnumerable<string> Endless(TaskCompletionSource stopped, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        yield return "Let me think about that. ";
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        finally
        {
            stopped.TrySetResult();
        }

        yield return "never";
    }

    private async Task<List<MiniOmniEvent>> Collect(MiniOmniRequest request)
    {
        var events = new List<MiniOmniEvent>();
        await foreach (var item in fixture.Engine.GenerateAsync(request))
        {
            events.Add(item);
        }

        return events;
    }
}
