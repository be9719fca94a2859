using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// An answer's or a transcription's usage, with OpenAI's token details. Mini-Omni reads its question's audio features and
/// text at positions of their own, so input tokens split by what each prompt position held. It writes text and speech
/// in the same positions: a position whose text stream holds a word's token counts as text, the others (speech only)
/// as audio, so the two add up to the output tokens. No prompt is reused from a cache, so no token is cached.
/// </summary>
internal static class RealtimeUsage
{
    /// <summary>The usage of <paramref name="completed"/>; <paramref name="speaks"/>: whether the answer spoke (its steps carry audio).</summary>
    public static UsageDetails From(AnswerCompleted completed, bool speaks)
    {
        int audioIn = Math.Clamp(completed.PromptAudioPositions, 0, completed.PromptTokens);
        int textOut = speaks ? Math.Clamp(completed.TextTokens, 0, completed.Steps) : completed.Steps;
        return new UsageDetails
        {
            InputTokenCount = completed.PromptTokens,
            OutputTokenCount = completed.Steps,
            TotalTokenCount = completed.PromptTokens + completed.Steps,
            InputAudioTokenCount = audioIn,
            InputTextTokenCount = completed.PromptTokens - audioIn,
            CachedInputTokenCount = 0,
            OutputTextTokenCount = textOut,
            OutputAudioTokenCount = completed.Steps - textOut,
        };
    }
}
