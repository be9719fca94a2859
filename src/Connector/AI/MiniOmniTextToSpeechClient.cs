using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Mini-Omni's T1A2 task as an <see cref="ITextToSpeechClient"/>. Mini-Omni answers rather than reads aloud: the speech is
/// its spoken answer to the text (its written answer comes with it as <see cref="TextContent"/>). Streaming updates carry
/// 24 kHz PCM16 chunks (<see cref="MiniOmniMediaTypes.SpeechChunk"/>); the whole response is one WAV.
/// </summary>
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

        response.Contents = [new DataContent(MiniOmniMediaTypes.EncodeWav(speech.ToArray()), MiniOmniMediaTypes.Wav) { Name = "answer.wav" }, new TextContent(answer.ToString())];
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

    private async IAsyncEnumerable<(TextToSpeechResponseUpdate Update, float[]? Speech)> SpeakAsync(string text, TextToSpeechOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ArgumentException("There is no text to answer.", nameof(text));
        }

        if (options?.AudioFormat is { } format && !(format.Contains("wav", StringComparison.OrdinalIgnoreCase) || format.Contains("pcm", StringComparison.OrdinalIgnoreCase)))
        {
            throw new NotSupportedException($"MiniOmni speaks 24 kHz PCM16 (WAV, or raw chunks when streaming); the audio format '{format}' is not available.");
        }

        if (options is { Speed: not (null or 1f) } or { Pitch: not (null or 1f) })
        {
            throw new NotSupportedException("Mini-Omni has one voice at one speed and pitch; Speed and Pitch cannot be changed.");
        }

        string responseId = $"miniomni-{Guid.NewGuid():N}";
        var request = new MiniOmniRequest { Task = MiniOmniTask.T1A2, Text = text };
        await foreach (var item in _engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            switch (item)
            {
                case SpeechChunk speech:
                    yield return (Update(TextToSpeechResponseUpdateKind.AudioUpdating, new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(speech.Samples), MiniOmniMediaTypes.SpeechChunk)), speech.Samples);
                    break;
                case TextDelta delta:
                    yield return (Update(TextToSpeechResponseUpdateKind.AudioUpdating, new TextContent(delta.Text)), null);
                    break;
                case AnswerCompleted completed:
                    var usage = MiniOmniClientExtensions.Usage(completed);
                    yield return (Update(TextToSpeechResponseUpdateKind.AudioUpdated, new UsageContent(usage)), null);
                    break;
            }
        }

        TextToSpeechResponseUpdate Update(TextToSpeechResponseUpdateKind kind, AIContent content) =>
            new([content]) { Kind = kind, ResponseId = responseId, ModelId = _engine.ModelId };
    }
}
