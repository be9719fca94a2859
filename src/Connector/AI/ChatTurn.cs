using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.AI;

/// <summary>
/// One chat turn made into a <see cref="MiniOmniRequest"/>: the last user message is the question (its audio, or its
/// text), everything before it is history, and tool calls and results after it are this turn's tool exchange; all but
/// the question go into the preamble through the conversation renderer.
/// </summary>
/// <remarks>
/// <see cref="ChatOptions.ToolMode"/>: <see cref="ChatToolMode.None"/> offers no tools; <see cref="ChatToolMode.Auto"/>
/// (or none) offers them and lets the model choose; a required mode offers them and makes the answer begin with a tool
/// call (<c>&lt;tool_call&gt;</c> and, for <see cref="ChatToolMode.RequireSpecific"/>, the function's name are fed to the
/// text stream), answered in text since a turn that calls a tool speaks nothing. The model still writes the arguments;
/// invalid JSON comes back as an <see cref="ErrorContent"/>.
/// </remarks>
internal sealed record ChatTurn(MiniOmniRequest Request, bool Speaks, bool ToolsOffered, IReadOnlyList<string> StopSequences)
{
    public static ChatTurn From(IEnumerable<ChatMessage> messages, ChatOptions? options, IConversationRenderer renderer)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var all = messages.ToList();
        var instructions = new List<string>();
        if (!string.IsNullOrWhiteSpace(options?.Instructions))
        {
            instructions.Add(options.Instructions);
        }

        var conversation = new List<ChatMessage>();
        foreach (var message in all)
        {
            if (message.Role == ChatRole.System || message.Role.Value == "developer")
            {
                instructions.Add(message.Text);
            }
            else
            {
                conversation.Add(message);
            }
        }

        int questionIndex = conversation.FindLastIndex(m => m.Role == ChatRole.User);
        if (questionIndex < 0)
        {
            throw new ArgumentException("The conversation has no user message to answer.", nameof(messages));
        }

        var question = conversation[questionIndex];
        var audio = QuestionAudio(question);
        string questionText = string.Concat(question.Contents.OfType<TextContent>().Select(t => t.Text)).Trim();
        if (audio is null && questionText.Length == 0)
        {
            throw new ArgumentException("The last user message has neither text nor audio.", nameof(messages));
        }

        var tools = options?.ToolMode is NoneChatToolMode ? [] : options?.Tools?.OfType<AIFunctionDeclaration>().ToList() ?? [];
        string? toolCallOpening = RequiredToolCallOpening(options?.ToolMode, tools);
        var output = toolCallOpening is not null ? MiniOmniOutput.Text
            : MiniOmniChatOptions.Output(options) ?? (audio is not null ? MiniOmniOutput.TextAndSpeech : MiniOmniOutput.Text);
        var mode = MiniOmniChatOptions.Mode(options);
        bool speaks = output == MiniOmniOutput.TextAndSpeech;
        if (mode == MiniOmniMode.BatchParallel && (audio is null || !speaks) && toolCallOpening is null)
        {
            throw new ArgumentException("Batch-parallel answers are for spoken questions answered with speech.", nameof(options));
        }

        var preamble = renderer.Render(new ConversationContext(
            instructions.Count == 0 ? null : string.Join("\n\n", instructions),
            tools,
            conversation[..questionIndex],
            conversation[(questionIndex + 1)..],
            audio is not null && questionText.Length > 0 ? questionText : null));

        var request = new MiniOmniRequest
        {
            Task = (audio is not null, speaks) switch
            {
                (true, true) => MiniOmniTask.A1A2,
                (true, false) => MiniOmniTask.A1T2,
                (false, true) => MiniOmniTask.T1A2,
                (false, false) => MiniOmniTask.T1T2,
            },
            Audio = audio ?? default(ReadOnlyMemory<float>),
            Text = audio is null ? questionText : null,
            PreambleSegments = preamble,
            AnswerPrefix = toolCallOpening,
            BatchParallel = mode == MiniOmniMode.BatchParallel && speaks,
            Sampling = Sampling(options),
            MaxTokens = options?.MaxOutputTokens is { } max ? (max > 0 ? max : throw new ArgumentOutOfRangeException(nameof(options), max, "MaxOutputTokens must be positive.")) : 0,
            EncoderMode = MiniOmniChatOptions.Encoder(options),
        };
        return new ChatTurn(request, speaks, tools.Count > 0, options?.StopSequences?.Where(s => !string.IsNullOrEmpty(s)).ToList() ?? []);
    }

    // What a required tool mode makes the answer begin with: the tool call's opening, as the tool instructions spell it.
    private static string? RequiredToolCallOpening(ChatToolMode? mode, IReadOnlyList<AIFunctionDeclaration> tools)
    {
        if (mode is not RequiredChatToolMode required)
        {
            return null;
        }

        if (tools.Count == 0)
        {
            throw new ArgumentException($"ChatOptions.ToolMode requires a tool call{(required.RequiredFunctionName is { } n ? $" to '{n}'" : "")}, and ChatOptions.Tools offers no function.", "options");
        }

        if (required.RequiredFunctionName is not { } name)
        {
            return ToolCallParser.RequiredOpening(null);
        }

        return tools.Any(t => t.Name == name)
            ? ToolCallParser.RequiredOpening(name)
            : throw new ArgumentException($"ChatOptions.ToolMode requires a call to '{name}', which is not among ChatOptions.Tools ({string.Join(", ", tools.Select(t => t.Name))}).", "options");
    }

    private static SamplingOptions Sampling(ChatOptions? options)
    {
        if (options is null)
        {
            return new SamplingOptions();
        }

        int? seed = options.Seed switch
        {
            null => null,
            >= int.MinValue and <= int.MaxValue => (int)options.Seed.Value,
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Seed, "Seed must fit in 32 bits."),
        };
        return new SamplingOptions
        {
            Temperature = options.Temperature ?? 0,
            TopK = options.TopK ?? 0,
            TopP = options.TopP ?? 1,
            Seed = seed,
        }.Validate();
    }

    // The question's audio: one audio part (inline, or a local file by URI); anything else MiniOmni cannot hear is an error.
    private static float[]? QuestionAudio(ChatMessage question)
    {
        float[]? audio = null;
        foreach (var content in question.Contents)
        {
            float[]? part = content switch
            {
                DataContent data when data.HasTopLevelMediaType("audio") => Decode(data),
                DataContent data => throw new NotSupportedException($"MiniOmni hears WAV or MP3 audio and reads text; the message has {data.MediaType} content."),
                UriContent uri when uri.HasTopLevelMediaType("audio") => DecodeFile(uri.Uri),
                UriContent uri => throw new NotSupportedException($"MiniOmni hears WAV or MP3 audio and reads text; the message refers to {uri.MediaType} at {uri.Uri}."),
                _ => null,
            };
            if (part is not null)
            {
                audio = audio is null ? part : throw new ArgumentException("The last user message has more than one audio part; MiniOmni answers one question at a time.", nameof(question));
            }
        }

        return audio;
    }

    private static float[] Decode(DataContent data)
    {
        if (!MiniOmniMediaTypes.IsReadableAudio(data.MediaType))
        {
            throw new NotSupportedException($"MiniOmni hears audio/wav or audio/mpeg; the message has {data.MediaType}.");
        }

        if (data.Data.IsEmpty)
        {
            throw new ArgumentException($"The message's {data.MediaType} part is empty.", nameof(data));
        }

        return AudioDecoder.Decode(data.Data, data.MediaType, inputName: data.Name ?? "the message's audio");
    }

    private static float[] DecodeFile(Uri uri)
    {
        if (!uri.IsFile)
        {
            throw new NotSupportedException($"MiniOmni reads audio from local files only; {uri} is not one. Send the audio inline as DataContent.");
        }

        if (!File.Exists(uri.LocalPath))
        {
            throw new FileNotFoundException($"The question's audio file {uri.LocalPath} does not exist.", uri.LocalPath);
        }

        return AudioDecoder.DecodeFile(uri.LocalPath);
    }
}
