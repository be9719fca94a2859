using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Mini-Omni's ASR task as an <see cref="ISpeechToTextClient"/>: audio in (WAV, MP3, Opus in Ogg or WebM; any rate and
/// channels; up to <see cref="MaxAudioDuration"/> long), the transcript out. Mini-Omni hears at most 30 s at once, so a
/// longer recording is cut at its pauses into windows of at most 30 s (<see cref="SpeechWindows"/>), each transcribed in
/// turn and the texts joined with spaces. Streaming gives one update per window, its text with the window's speech
/// <see cref="SpeechToTextResponseUpdate.StartTime"/> and <see cref="SpeechToTextResponseUpdate.EndTime"/> (its raw
/// representation the <see cref="SpeechWindow"/>), then a closing update with the usage of all windows.
/// </summary>
/// <remarks>
/// Honoured from <see cref="SpeechToTextOptions.AdditionalProperties"/>: the encoder mode
/// (<see cref="MiniOmniAudioOptions.WithEncoderMode"/>) and <see cref="MiniOmniAudioOptions.MaxTokensKey"/> (per window). Ignored: the
/// model, the languages (Mini-Omni transcribes English) and the sample rate (the audio's own header says it). Silent
/// windows are not transcribed.
/// </remarks>
public sealed class MiniOmniSpeechToTextClient : ISpeechToTextClient
{
    /// <summary>The longest recording transcribed by default: 30 minutes (115 MB of 16 kHz samples while it is transcribed).</summary>
    public static readonly TimeSpan DefaultMaxAudioDuration = TimeSpan.FromMinutes(30);

    private readonly IMiniOmniEngine _engine;
    private readonly SpeechToTextClientMetadata _metadata;

    /// <summary>A speech-to-text client over <paramref name="engine"/>, which it does not own.</summary>
    public MiniOmniSpeechToTextClient(IMiniOmniEngine engine)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _metadata = new SpeechToTextClientMetadata(MiniOmniClientExtensions.ProviderName, providerUri: null, engine.ModelId);
    }

    /// <summary>The longest recording transcribed; longer is an <see cref="AudioFormatException"/> (at most <see cref="AudioInputOptions.LongestAudio"/>).</summary>
    public TimeSpan MaxAudioDuration { get; init; } = DefaultMaxAudioDuration;

    /// <summary>How recordings are cut into windows.</summary>
    public SpeechWindowOptions Windows { get; init; } = SpeechWindowOptions.Default;

    /// <inheritdoc />
    public async Task<SpeechToTextResponse> GetTextAsync(Stream audioSpeechStream, SpeechToTextOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        var response = new SpeechToTextResponse { ModelId = _engine.ModelId };
        await foreach (var update in GetStreamingTextAsync(audioSpeechStream, options, cancellationToken).ConfigureAwait(false))
        {
            response.ResponseId ??= update.ResponseId;
            if (update.Kind == SpeechToTextResponseUpdateKind.TextUpdated)
            {
                response.StartTime ??= update.StartTime;
                response.EndTime = update.EndTime ?? response.EndTime;
            }

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
        float[] samples = await AudioDecoder.DecodeAsync(audioSpeechStream, mediaType: null, new AudioInputOptions { MaxDuration = MaxAudioDuration }, inputName: "the audio stream", cancellationToken: cancellationToken).ConfigureAwait(false);
        var request = new MiniOmniRequest
        {
            Task = MiniOmniTask.Asr,
            EncoderMode = MiniOmniChatOptions.Encoder(options?.AdditionalProperties),
            MaxTokens = MiniOmniAudioOptions.MaxTokens(options?.AdditionalProperties),
        };
        string responseId = $"miniomni-{Guid.NewGuid():N}";
        var usage = new UsageDetails { InputTokenCount = 0, OutputTokenCount = 0, TotalTokenCount = 0 };
        bool first = true;
        AnswerCompleted? last = null;
        var windows = SpeechWindows.Split(samples, Windows);
        foreach (var window in windows)
        {
            // A recording Mini-Omni hears at once is transcribed as it is; of a longer one, the silent windows are skipped.
            bool whole = windows.Count == 1;
            if (window.IsSilent && !whole)
            {
                continue;
            }

            var text = new StringBuilder();
            await foreach (var item in _engine.GenerateAsync(request with { Audio = window.Slice(samples).ToArray() }, cancellationToken).ConfigureAwait(false))
            {
                if (item is TextDelta delta)
                {
                    text.Append(delta.Text);
                }
                else if (item is AnswerCompleted completed)
                {
                    usage.Add(RealtimeUsage.From(completed, speaks: false));
                    last = completed;
                }
            }

            string words = whole ? text.ToString() : text.ToString().Trim();
            if (words.Length == 0)
            {
                continue;
            }

            yield return new SpeechToTextResponseUpdate(first ? words : " " + words)
            {
                Kind = SpeechToTextResponseUpdateKind.TextUpdated,
                ResponseId = responseId,
                ModelId = _engine.ModelId,
                StartTime = whole ? TimeSpan.Zero : window.SpeechStartTime,
                EndTime = whole ? TimeSpan.FromSeconds(window.Length / (double)WhisperLogMel.SampleRate) : window.SpeechEndTime,
                RawRepresentation = window,
            };
            first = false;
        }

        yield return new SpeechToTextResponseUpdate([new UsageContent(usage)]) { Kind = SpeechToTextResponseUpdateKind.SessionClose, ResponseId = responseId, ModelId = _engine.ModelId, RawRepresentation = last };
    }
    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => MiniOmniClientExtensions.GetService(serviceType, serviceKey, _metadata, _engine, this);

    /// <summary>Nothing to release: the engine belongs to whoever created it.</summary>
    public void Dispose()
    {
    }
}
