using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using MiniOmni.SK.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Mini-Omni as an <see cref="ITextToSpeechClient"/>. By default it reads the text aloud: text-forced decoding
/// (<see cref="MiniOmniTask.ReadAloud"/>) feeds the text to the model's text stream and its audio heads speak it. Long
/// text is split at sentence ends and spoken one engine answer per sentence, in order, the next sentence computed while
/// the current one is heard. Asked (<see cref="MiniOmniAudioOptions.WithMiniOmniSpeechMode"/>), it speaks Mini-Omni's
/// answer to the text instead (the release's T1A2 task), the written answer beside it as <see cref="TextContent"/>.
/// Streaming updates carry 24 kHz PCM16 chunks (<see cref="MiniOmniMediaTypes.SpeechChunk"/>), each with the engine's
/// event as its raw representation, then a closing update with the usage; the whole response is one WAV.
/// </summary>
/// <remarks>
/// Mini-Omni has one voice, one speed and one pitch: <c>Speed</c>, <c>Pitch</c> and <c>Volume</c> other than 1, and audio
/// formats other than WAV or PCM, are refused; <c>VoiceId</c>, <c>Language</c> and <c>ModelId</c> are ignored. Sampling and
/// the budget come from <c>AdditionalProperties</c> (<see cref="MiniOmniAudioOptions"/>); greedy decoding is the default.
/// </remarks>
public sealed class MiniOmniTextToSpeechClient : ITextToSpeechClient
{
    private readonly IMiniOmniEngine _engine;
    private readonly TextToSpeechClientMetadata _metadata;

    /// <summary>A text-to-speech client over <paramref name="engine"/>, which it does not own.</summary>
    public MiniOmniTextToSpeechClient(IMiniOmniEngine engine)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _metadata = new TextToSpeechClientMetadata(MiniOmniClientExtensions.ProviderName, providerUri: null, engine.ModelId);
    }

    /// <inheritdoc />
    public async Task<TextToSpeechResponse> GetAudioAsync(string text, TextToSpeechOptions? options = null, CancellationToken cancellationToken = default)
    {
        var speech = new List<float>();
        var answer = new StringBuilder();
        var response = new TextToSpeechResponse { ModelId = _engine.ModelId };
        await foreach (var (update, samples) in SpeakAsync(text, options, cancellationToken).ConfigureAwait(false))
        {
            response.ResponseId ??= update.ResponseId;
            speech.AddRange(samples ?? []);
            foreach (var content in update.Contents)
            {
                if (content is TextContent part)
                {
                    answer.Append(part.Text);
                }
                else if (content is UsageContent usage)
                {
                    response.Usage = usage.Details;
                }
            }
        }

        response.Contents = [new DataContent(MiniOmniMediaTypes.EncodeWav(speech.ToArray()), MiniOmniMediaTypes.Wav) { Name = "speech.wav" }];
        if (answer.Length > 0)
        {
            response.Contents.Add(new TextContent(answer.ToString()));
        }

        return response;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<TextToSpeechResponseUpdate> GetStreamingAudioAsync(string text, TextToSpeechOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var (update, _) in SpeakAsync(text, options, cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _metadata, _engine, this);

    /// <summary>Nothing to release: the engine belongs to whoever created it.</summary>
    public void Dispose()
    {
    }

    // The speech as updates, each with the samples it carries (so the whole response can build one WAV).
    private async IAsyncEnumerable<(TextToSpeechResponseUpdate Update, float[]? Speech)> SpeakAsync(string text, TextToSpeechOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(text);
        var mode = MiniOmniAudioOptions.SpeechMode(options?.AdditionalProperties);
        var request = Request(text, mode, options);
        IReadOnlyList<string> pieces = mode == MiniOmniSpeechMode.Answer ? [text] : SentenceSplitter.Split(text);
        if (pieces.Count == 0)
        {
            throw new ArgumentException("There is no word to read aloud in the text.", nameof(text));
        }

        string responseId = $"miniomni-{Guid.NewGuid():N}";
        TextToSpeechResponseUpdate Update(TextToSpeechResponseUpdateKind kind, MiniOmniEvent? raw, params AIContent[] contents) =>
            new(contents) { Kind = kind, ResponseId = responseId, ModelId = _engine.ModelId, RawRepresentation = raw };

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var answers = new Channel<MiniOmniEvent>?[pieces.Count];
        ChannelReader<MiniOmniEvent> Start(int index) =>
            (answers[index] ??= Answer(request with { Text = pieces[index] }, stop.Token)).Reader;

        var usage = new UsageDetails { InputTokenCount = 0, OutputTokenCount = 0, TotalTokenCount = 0 };
        try
        {
            for (int index = 0; index < pieces.Count; index++)
            {
                await foreach (var item in Start(index).ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    switch (item)
                    {
                        case SpeechChunk chunk:
                            // The next sentence starts once this one is heard, so it is ready by the time this one ends.
                            if (index + 1 < pieces.Count)
                            {
                                Start(index + 1);
                            }

                            var audio = new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(chunk.Samples), MiniOmniMediaTypes.SpeechChunk);
                            yield return (Update(TextToSpeechResponseUpdateKind.AudioUpdating, chunk, audio), chunk.Samples);
                            break;
                        case TextDelta delta when mode == MiniOmniSpeechMode.Answer:
                            yield return (Update(TextToSpeechResponseUpdateKind.AudioUpdating, delta, new TextContent(delta.Text)), null);
                            break;
                        case AnswerCompleted completed:
                            var details = MiniOmniClientExtensions.Usage(completed);
                            usage.InputTokenCount += details.InputTokenCount;
                            usage.OutputTokenCount += details.OutputTokenCount;
                            usage.TotalTokenCount += details.TotalTokenCount;
                            break;
                    }
                }
            }
        }
        finally
        {
            // A caller that stops early (an error, a break, a cancellation) stops the sentences under way too.
            await stop.CancelAsync().ConfigureAwait(false);
        }

        yield return (Update(TextToSpeechResponseUpdateKind.SessionClose, null, new UsageContent(usage)), null);
    }

    // One sentence's answer, run into a channel as it comes, so the next sentence can be computed while this one is heard.
    private Channel<MiniOmniEvent> Answer(MiniOmniRequest request, CancellationToken cancellationToken)
    {
        var events = Channel.CreateUnbounded<MiniOmniEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var item in _engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
                {
                    events.Writer.TryWrite(item);
                }

                events.Writer.TryComplete();
            }
            catch (Exception e)
            {
                events.Writer.TryComplete(e);
            }
        }, CancellationToken.None);
        return events;
    }

    private static MiniOmniRequest Request(string text, MiniOmniSpeechMode mode, TextToSpeechOptions? options)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ArgumentException("There is no text to speak.", nameof(text));
        }

        if (options?.AudioFormat is { } format && !(format.Contains("wav", StringComparison.OrdinalIgnoreCase) || format.Contains("pcm", StringComparison.OrdinalIgnoreCase)))
        {
            throw new NotSupportedException($"MiniOmni speaks 24 kHz PCM16 (WAV, or raw chunks when streaming); the audio format '{format}' is not available.");
        }

        if (options is { Speed: not (null or 1f) } or { Pitch: not (null or 1f) } or { Volume: not (null or 1f) })
        {
            throw new NotSupportedException("Mini-Omni has one voice at one speed, pitch and volume; Speed, Pitch and Volume cannot be changed.");
        }

        var properties = options?.AdditionalProperties;
        return new MiniOmniRequest
        {
            Task = mode == MiniOmniSpeechMode.ReadAloud ? MiniOmniTask.ReadAloud : MiniOmniTask.T1A2,
            Sampling = MiniOmniAudioOptions.Sampling(properties),
            MaxTokens = MiniOmniAudioOptions.MaxTokens(properties),
        };
    }
}
