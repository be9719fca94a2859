using Microsoft.Extensions.AI;
using MiniOmni.SK.AI;

namespace MiniOmni.SK;

/// <summary>
/// The tools one realtime answer offers the model, as the chat client offers them: the functions described in Qwen2's
/// <c>&lt;tools&gt;</c> block after the instructions, and under a required tool mode the opening of a
/// <c>&lt;tool_call&gt;</c> fed to the answer's text (<see cref="ToolCallParser.RequiredOpening"/>). Only function
/// declarations are offered; other tools (hosted ones) are left out, as the chat client leaves them out.
/// </summary>
/// <param name="Tools">The functions offered; empty offers none.</param>
/// <param name="RequiredOpening">What the answer must begin with under a required mode; null leaves the model free.</param>
internal sealed record RealtimeToolOffer(IReadOnlyList<AIFunctionDeclaration> Tools, string? RequiredOpening)
{
    /// <summary>No tools.</summary>
    public static RealtimeToolOffer None { get; } = new([], null);

    /// <summary>Whether any function is offered (the answer is then watched for tool calls).</summary>
    public bool Offered => Tools.Count > 0;

    /// <summary>
    /// The offer of <paramref name="tools"/> under <paramref name="mode"/>: <see cref="ChatToolMode.None"/> offers nothing,
    /// auto (or none given) offers them, a required mode offers them and makes the answer open a call.
    /// </summary>
    /// <param name="tools">The tools given; only function declarations are offered.</param>
    /// <param name="mode">The tool mode given; null is auto.</param>
    /// <param name="source">Where the tools and mode come from, for the error message ("the session", "the response").</param>
    /// <exception cref="RealtimeRequestException">A required mode with no function, or naming one not offered.</exception>
    public static RealtimeToolOffer From(IEnumerable<AITool>? tools, ChatToolMode? mode, string source)
    {
        if (mode is NoneChatToolMode)
        {
            return None;
        }

        var functions = tools?.OfType<AIFunctionDeclaration>().ToList() ?? [];
        if (mode is not RequiredChatToolMode required)
        {
            return functions.Count == 0 ? None : new RealtimeToolOffer(functions, null);
        }

        string? name = required.RequiredFunctionName;
        if (functions.Count == 0)
        {
            throw Invalid($"The tool mode of {source} requires a tool call{(name is null ? string.Empty : $" to '{name}'")}, and {source} offers no function.");
        }

        if (name is not null && !functions.Any(f => f.Name == name))
        {
            throw Invalid($"The tool mode of {source} requires a call to '{name}', which is not among its tools ({string.Join(", ", functions.Select(f => f.Name))}).");
        }

        return new RealtimeToolOffer(functions, ToolCallParser.RequiredOpening(name));
    }

    /// <summary>The same functions with the model left free: how a required mode is relaxed once function results came back.</summary>
    public RealtimeToolOffer Free() => RequiredOpening is null ? this : this with { RequiredOpening = null };

    /// <summary>The system part of the preamble: <paramref name="instructions"/>, then the tools block when functions are offered.</summary>
    public string? SystemText(string? instructions) =>
        Offered ? ConversationText.SystemPart(new ConversationContext(instructions, Tools, [], [], null)) : instructions;

    private static RealtimeRequestException Invalid(string message) => new(RealtimeErrorCodes.InvalidSessionOptions, message);
}
