using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK;

/// <summary>How a <see cref="MiniOmniVoiceChatClient"/> hears and speaks for its thinker.</summary>
public sealed class MiniOmniVoiceOptions
{
    /// <summary>How spoken questions are encoded for transcription; <see cref="EncoderMode.Fast"/> hears a short question sooner.</summary>
    public EncoderMode EncoderMode { get; set; } = EncoderMode.Exact;

    /// <summary>The most tokens of one spoken question's transcript.</summary>
    public int TranscriptMaxTokens { get; set; } = 256;

    /// <summary>How the voice picks its audio tokens; greedy by default, as the release decodes.</summary>
    public SamplingOptions Sampling { get; set; } = new();

    /// <summary>
    /// The most steps (85 ms audio frames) of one spoken answer; 0 takes the engine's default budget. A streamed answer is
    /// also held to the read-aloud budget of its length once the thinker has finished.
    /// </summary>
    public int MaxSpeechSteps { get; set; }

    /// <summary>The most transcripts of spoken turns kept (by content hash), so a conversation sent again is not heard again.</summary>
    public int TranscriptCacheEntries { get; set; } = 256;
}

/// <summary>
/// Any chat client made to hear and speak with Mini-Omni (the paper's "any model can talk"): a spoken question (a
/// <see cref="DataContent"/> in any container <see cref="MiniOmniMediaTypes.IsReadableAudio"/> accepts) is transcribed with Mini-Omni's ASR task, the inner client (the thinker: any model, an
/// agent's client with its own function invocation) answers the conversation as text, with the caller's
/// <see cref="ChatOptions"/> (tools included), and Mini-Omni speaks the thinker's text while it streams. Streaming updates
/// carry the answer's text as it is spoken, 24 kHz PCM16 speech chunks (<see cref="MiniOmniMediaTypes.SpeechChunk"/>) and
/// whatever else the thinker says (function calls, usage) as it comes; the first update carries the question's transcript
/// in <see cref="TranscriptKey"/>. The whole response carries the text, one WAV and the thinker's other contents.
/// </summary>
/// <remarks>
/// Reached with <c>thinker.AsBuilder().UseMiniOmniVoice(engine)</c>. Stopping the stream (cancellation, barge-in) cancels
/// the thinker's request. A thinker that cannot be reached or fails ends the turn with a
/// <see cref="MiniOmniThinkerException"/> naming its endpoint and status. Text-only output
/// (<see cref="MiniOmniChatOptions.WithMiniOmniOutput"/> Text) passes the thinker's text on unspoken.
/// </remarks>
public sealed class MiniOmniVoiceChatClient : DelegatingChatClient
{
    /// <summary>The <see cref="ChatResponseUpdate.AdditionalProperties"/> key of the spoken question's transcript.</summary>
    public const string TranscriptKey = "miniomni_transcript";

    private readonly IMiniOmniEngine _voice;
    private readonly MiniOmniVoiceOptions _options;
    private readonly ThinkerVoice _thinking;
    private readonly SpokenMemory _spokenMemory;
    private readonly TranscriptCache _questions;

    /// <summary>A voice for <paramref name="thinker"/>, spoken by <paramref name="voice"/> (which it does not own).</summary>
    public MiniOmniVoiceChatClient(IChatClient thinker, IMiniOmniEngine voice, MiniOmniVoiceOptions? options = null, ILogger<MiniOmniVoiceChatClient>? logger = null)
        : base(thinker)
    {
        _voice = voice ?? throw new ArgumentNullException(nameof(voice));
        var given = options ?? new MiniOmniVoiceOptions();
        // A copy: the caller's object may change later; this client keeps what it was given.
        _options = new MiniOmniVoiceOptions { EncoderMode = given.EncoderMode, TranscriptMaxTokens = given.TranscriptMaxTokens, Sampling = given.Sampling ?? new(), MaxSpeechSteps = given.MaxSpeechSteps, TranscriptCacheEntries = given.TranscriptCacheEntries };
        if (_options.TranscriptMaxTokens <= 0 || _options.MaxSpeechSteps < 0 || _options.TranscriptCacheEntries <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "TranscriptMaxTokens and TranscriptCacheEntries must be positive and MaxSpeechSteps 0 (the default) or positive.");
        }

        _options.Sampling.Validate();
        var log = (ILogger?)logger ?? NullLogger.Instance;
        _thinking = new ThinkerVoice(thinker, voice, log);
        _spokenMemory = new SpokenMemory(voice, new TranscriptCache(_options.TranscriptCacheEntries, 1 << 20), _options.TranscriptMaxTokens, log);
        // An agent's function loop sends the same spoken question again with each tool result: it is heard once.
        _questions = new TranscriptCache(_options.TranscriptCacheEntries, 1 << 20);
    }

    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var response = new ChatResponse();
        var builder = new SpokenResponseBuilder(response);
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            if (update.AdditionalProperties?.TryGetValue(TranscriptKey, out var transcript) == true)
            {
                (response.AdditionalProperties ??= [])[TranscriptKey] = transcript;
            }

            builder.Add(update, update.RawRepresentation is SpeechChunk chunk ? chunk.Samples : []);
        }

        return builder.Build();
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        IReadOnlyList<ChatMessage> conversation = [.. messages];
        var encoder = options?.AdditionalProperties?.ContainsKey(MiniOmniChatOptions.EncoderModeKey) == true ? MiniOmniChatOptions.Encoder(options) : _options.EncoderMode;
        conversation = await _spokenMemory.RecallAsync(conversation, encoder, cancellationToken).ConfigureAwait(false);
        int questionIndex = conversation.Select((m, i) => (m, i)).LastOrDefault(x => x.m.Role == ChatRole.User, (null!, -1)).Item2;
        string question = "";
        string? transcript = null;
        if (questionIndex >= 0)
        {
            var asked = conversation[questionIndex];
            question = string.Concat(asked.Contents.OfType<TextContent>().Select(t => t.Text)).Trim();
            if (question.Length == 0 && asked.Contents.FirstOrDefault(c => c is DataContent data && data.HasTopLevelMediaType("audio")) is DataContent audio)
            {
                transcript = question = await TranscribeAsync(audio, encoder, cancellationToken).ConfigureAwait(false);
            }
        }

        // The thinker gets words: spoken turns as their transcripts, no audio.
        var thinkerMessages = conversation.Select((message, i) => i == questionIndex && transcript is not null
            ? new ChatMessage(ChatRole.User, transcript) { AuthorName = message.AuthorName, MessageId = message.MessageId }
            : WithoutAudio(message)).ToList();
        bool speaks = MiniOmniChatOptions.Output(options) != MiniOmniOutput.Text;
        string responseId = $"miniomni-voice-{Guid.NewGuid():N}";
        ChatFinishReason? finish = null;
        UsageDetails? usage = null;
        var voiceRequest = new MiniOmniRequest { Sampling = _options.Sampling, MaxTokens = _options.MaxSpeechSteps, EncoderMode = encoder };
        if (transcript is not null)
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, []) { ResponseId = responseId, MessageId = responseId, AdditionalProperties = new() { [TranscriptKey] = transcript } };
        }

        await foreach (var item in _thinking.AnswerAsync(thinkerMessages, question, options, speaks, voiceRequest, cancellationToken).ConfigureAwait(false))
        {
            switch (item)
            {
                case TextDelta delta:
                    yield return Update(item, new TextContent(delta.Text));
                    break;
                case SpeechChunk chunk:
                    yield return Update(item, new DataContent(MiniOmniMediaTypes.EncodeSpeechChunk(chunk.Samples), MiniOmniMediaTypes.SpeechChunk));
                    break;
                case ThinkerUpdate thought:
                    finish = thought.Update.FinishReason ?? finish;
                    var contents = thought.Update.Contents.Where(c => c is not UsageContent).ToList();
                    foreach (var used in thought.Update.Contents.OfType<UsageContent>())
                    {
                        (usage ??= new UsageDetails()).Add(used.Details);
                    }

                    if (contents.Count > 0)
                    {
                        var passed = Update(thought.Update.RawRepresentation, [.. contents]);
                        passed.ModelId = thought.Update.ModelId;
                        yield return passed;
                    }

                    break;
            }
        }

        var last = Update(null, usage is null ? [] : [new UsageContent(usage)]);
        last.FinishReason = finish ?? ChatFinishReason.Stop;
        yield return last;

        ChatResponseUpdate Update(object? raw, params AIContent[] contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId,
            MessageId = responseId,
            CreatedAt = DateTimeOffset.UtcNow,
            RawRepresentation = raw,
        };
    }

    /// <inheritdoc />
    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(IMiniOmniEngine) ? _voice : base.GetService(serviceType, serviceKey);

    private async Task<string> TranscribeAsync(DataContent audio, EncoderMode encoder, CancellationToken cancellationToken)
    {
        string key = $"{encoder}\n{audio.MediaType}\n{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(audio.Data.Span))}";
        if (_questions.TryGet(key, out string? known))
        {
            return known;
        }

        float[] samples;
        try
        {
            samples = AudioDecoder.Decode(audio.Data, audio.MediaType, new AudioInputOptions { TruncateToWindow = true }, inputName: audio.Name ?? "the spoken question");
        }
        catch (Exception e) when (e is AudioFormatException or NotSupportedException)
        {
            throw new ArgumentException($"The question's audio could not be heard: {e.Message}", nameof(audio), e);
        }

        var text = new StringBuilder();
        var request = new MiniOmniRequest { Task = MiniOmniTask.Asr, Audio = samples, MaxTokens = _options.TranscriptMaxTokens, EncoderMode = encoder };
        await foreach (var item in _voice.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (item is TextDelta delta)
            {
                text.Append(delta.Text);
            }
        }

        string transcript = text.ToString().Trim();
        _questions.Add(key, transcript);
        return transcript;
    }

    private static ChatMessage WithoutAudio(ChatMessage message) =>
        message.Contents.Any(c => c is DataContent data && data.HasTopLevelMediaType("audio"))
            ? new ChatMessage(message.Role, [.. message.Contents.Where(c => !(c is DataContent data && data.HasTopLevelMediaType("audio")))]) { AuthorName = message.AuthorName, MessageId = message.MessageId }
            : message;
}

/// <summary>Adds <see cref="MiniOmniVoiceChatClient"/> to a chat client pipeline.</summary>
public static class MiniOmniVoiceChatClientBuilderExtensions
{
    /// <summary>
    /// Makes the pipeline's chat client hear and speak with Mini-Omni: spoken questions are transcribed, the client answers
    /// as text, and <paramref name="voice"/> speaks its answer while it streams.
    /// </summary>
    public static ChatClientBuilder UseMiniOmniVoice(this ChatClientBuilder builder, IMiniOmniEngine voice, Action<MiniOmniVoiceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(voice);
        return builder.Use((inner, services) =>
        {
            var options = new MiniOmniVoiceOptions();
            configure?.Invoke(options);
            var loggers = services.GetService(typeof(ILoggerFactory)) as ILoggerFactory;
            return new MiniOmniVoiceChatClient(inner, voice, options, loggers?.CreateLogger<MiniOmniVoiceChatClient>());
        });
    }
}
