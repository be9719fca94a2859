using Microsoft.Extensions.AI;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.AudioToText;
using Microsoft.SemanticKernel.TextToAudio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Semantic Kernel's <see cref="IAudioToTextService"/> over Mini-Omni's ASR task; the execution settings
/// (<see cref="MiniOmniPromptExecutionSettings"/>, or any settings by the same names) give the budget and encoder mode.
/// </summary>
public sealed class MiniOmniAudioToTextService(ISpeechToTextClient client) : IAudioToTextService
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, object?> Attributes { get; } = ModelAttributes(client.GetService<SpeechToTextClientMetadata>()?.DefaultModelId);

    /// <inheritdoc />
    public async Task<IReadOnlyList<Microsoft.SemanticKernel.TextContent>> GetTextContentsAsync(AudioContent content, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        if (content.Data is not { IsEmpty: false } data)
        {
            throw new ArgumentException("The audio content has no data; MiniOmni reads inline audio bytes (WAV, MP3, or Opus in Ogg or WebM).", nameof(content));
        }

        var settings = MiniOmniPromptExecutionSettings.FromExecutionSettings(executionSettings);
        var options = new SpeechToTextOptions { ModelId = settings.ModelId, AdditionalProperties = settings.AudioProperties() };
        using var stream = new MemoryStream(data.ToArray());
        var response = await client.GetTextAsync(stream, options, cancellationToken).ConfigureAwait(false);
        return [new Microsoft.SemanticKernel.TextContent(response.Text, response.ModelId)];
    }

    internal static IReadOnlyDictionary<string, object?> ModelAttributes(string? modelId) => new Dictionary<string, object?> { ["ModelId"] = modelId };
}

/// <summary>
/// Semantic Kernel's <see cref="ITextToAudioService"/> over Mini-Omni's text-to-speech: the text read aloud (or, with
/// <see cref="MiniOmniPromptExecutionSettings.SpeechMode"/> <see cref="MiniOmniSpeechMode.Answer"/>, Mini-Omni's spoken
/// answer to it), as one 24 kHz WAV. The execution settings give the sampling, budget and speech mode.
/// </summary>
public sealed class MiniOmniTextToAudioService(ITextToSpeechClient client) : ITextToAudioService
{
    /// <inheritdoc />
    public IReadOnlyDictionary<string, object?> Attributes { get; } = MiniOmniAudioToTextService.ModelAttributes(client.GetService<TextToSpeechClientMetadata>()?.DefaultModelId);

    /// <inheritdoc />
    public async Task<IReadOnlyList<AudioContent>> GetAudioContentsAsync(string text, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null, CancellationToken cancellationToken = default)
    {
        var settings = MiniOmniPromptExecutionSettings.FromExecutionSettings(executionSettings);
        var options = new TextToSpeechOptions { ModelId = settings.ModelId, AdditionalProperties = settings.AudioProperties() };
        var response = await client.GetAudioAsync(text, options, cancellationToken).ConfigureAwait(false);
        return [.. response.Contents.OfType<DataContent>().Select(wav => new AudioContent(wav.Data, wav.MediaType) { ModelId = response.ModelId })];
    }
}
