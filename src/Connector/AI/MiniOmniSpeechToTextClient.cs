using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Mini-Omni's ASR task as an <see cref="ISpeechToTextClient"/>: WAV or MP3 in (any rate and channels, at most 30 s),
/// the transcript out, streamed as it is generated (each update with the engine's event as its raw representation), then
/// a closing update with the usage.
/// </summary>
/// <remarks>
/// Honoured from <see cref="SpeechToTextOptions.AdditionalProperties"/>: the encoder mode
/// (<see cref="MiniOmniAudioOptions.WithEncoderMode"/>) and <see cref="MiniOmniAudioOptions.MaxTokensKey"/>. Ignored: the
/// model, the languages (Mini-Omni transcribes English) and the sample rate (the audio's own header says it).
/// </remarks>
public sealed class MiniOmniSpeechToTextClient : ISpeechToTextClient
{
    private readonly IMiniOmniEngine _engine;
    private readonly SpeechToTextClientMetadata _metadata;

    /// <summary>A speech-to-text client over <paramref name="engine"/>, which it does not own.</summary>
    public MiniOmniSpeechToTextClient(IMiniOmniEngine engine)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _metadata = new SpeechToTextClientMetadata(MiniOmniClientExtensions.ProviderName, providerUri: null, engine.ModelId);
    }

    /// <inheritdoc />
    public async Task<SpeechToTextResponse> GetTextAsync(Stream audioSpeechStream, SpeechToTextOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        var response = new SpeechToTextResponse { ModelId = _engine.ModelId };
        await foreach (var update in GetStreamingTextAsync(audioSpeechStream, options, cancellationToken).ConfigureAwait(false))
        {
            response.ResponseId ??= update.ResponseId;
            foreach (var content in update.Contents)
            {
                if (content is TextContent part)
                {
                    text.Append(part.Text);
                }
                else if (content is UsageContent usage)
                {
                    response.Usage = usage.Details;
                }
            }
        }

        response.Contents = [new TextContent(text.ToString())];
        return response;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<SpeechToTextResponseUpdate> GetStreamingTextAsync(Stream audioSpeechStream, SpeechToTextOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(audioSpeechStream);
        // Buffered only up to AudioInputOptions.MaxInputBytes: a stream that never ends fails instead of filling memory.
        float[] samples = await AudioDecoder.DecodeAsync(audioSpeechStream, mediaType: null, inputName: "the audio stream", cancellationToken: cancellationToken).ConfigureAwait(false);
        var request = new MiniOmniRequest
        {
            Task = MiniOmniTask.Asr,
            EncoderMode = MiniOmniChatOptions.Encoder(options?.AdditionalProperties),
            MaxTokens = MiniOmniAudioOptions.MaxTokens(options?.AdditionalProperties),
        };
        string responseId = $"miniomni-{Guid.NewGuid():N}";
        await foreach (var item in _engine.GenerateAsync(request with { Audio = samples }, cancellationToken).ConfigureAwait(false))
        {
            if (item is TextDelta delta)
            {
                yield return new SpeechToTextResponseUpdate(delta.Text) { Kind = SpeechToTextResponseUpdateKind.TextUpdating, ResponseId = responseId, ModelId = _engine.ModelId, RawRepresentation = delta };
            }
            else if (item is AnswerCompleted completed)
            {
                var usage = MiniOmniClientExtensions.Usage(completed);
                yield return new SpeechToTextResponseUpdate([new UsageContent(usage)]) { Kind = SpeechToTextResponseUpdateKind.TextUpdated, ResponseId = responseId, ModelId = _engine.ModelId, RawRepresentation = completed };
            }
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _metadata, _engine, this);

    /// <summary>Nothing to release: the engine belongs to whoever created it.</summary>
    public void Dispose()
    {
    }
}
