namespace MiniOmni.SK.Engine;

/// <summary>What one step produced, as the release keeps it: seven audio codes (unshifted) and one text token.</summary>
internal readonly record struct StepTokens(int[] Audio, int Text);

/// <summary>
/// Text fed to an answer's text stream instead of sampling its text head: one token per step from the first step on.
/// </summary>
/// <param name="Tokens">Ordinary text tokens (no specials), fed in order.</param>
/// <param name="EndsText">
/// Whether the text ends with them: EOT follows them and PAD_T after it, as if the model had ended its text there (reading
/// aloud). Otherwise the text head is sampled again once they are fed (an answer that must begin with them).
/// </param>
internal sealed record TextForcing(IReadOnlyList<int> Tokens, bool EndsText);

/// <summary>
/// The release's per-step rules (spec section 4) for one answer: after EOT every text token is PAD_T; speech stops when
/// audio head 6 gives EOA (that step not kept) and never on the first step; text answers stop at EOT (not kept);
/// at most <see cref="MaxSteps"/> steps, the first included. With <see cref="TextForcing"/>, the text stream is
/// given instead of sampled (see <see cref="ForcedText"/>). Not thread-safe: one per answer.
/// </summary>
/// <remarks>
/// With <see cref="StreamedText"/> (a read-aloud answer whose text is still being written), the text is forced as it comes:
/// while the next token has not come, <see cref="WaitsForText"/> is true and the answer takes no step (its row idles rather
/// than pads, so the steps are exactly those of reading the whole text at once); once the text has ended, the budget is
/// at most the read-aloud budget of its length (<see cref="MiniOmniEngine.ReadAloudSteps"/>).
/// </remarks>
internal sealed class DecodingRules(MiniOmniVocabulary vocabulary, bool speaks, int maxSteps, TextForcing? forcing = null, StreamedText? streamed = null)
{
    private const int LastAudioLayer = 6;
    private readonly int _maxSteps = maxSteps > 0 ? maxSteps : throw new ArgumentOutOfRangeException(nameof(maxSteps), maxSteps, "An answer needs at least one step.");
    private bool _textEnded;

    /// <summary>Steps kept so far.</summary>
    public int Steps { get; private set; }

    /// <summary>The most steps the answer may take (for streamed text, lowered to its read-aloud budget once it has ended).</summary>
    public int MaxSteps => streamed is { Ended: true } ? Math.Min(_maxSteps, MiniOmniEngine.ReadAloudSteps(streamed.Count)) : _maxSteps;

    /// <summary>Whether the next step waits for streamed text that has not come yet.</summary>
    public bool WaitsForText => streamed is not null && ForcedText is null;

    /// <summary>Whether the text stream has ended (EOT sampled or forced).</summary>
    public bool TextEnded => _textEnded;

    /// <summary>
    /// The text token the next step takes without sampling, or null when the text head decides it: the forced tokens in
    /// order, then (when they end the text) EOT, then PAD_T. Once any text has ended, the rules give PAD_T themselves.
    /// </summary>
    public int? ForcedText => streamed is not null ? StreamedForcedText() : forcing switch
    {
        null => null,
        _ when Steps < forcing.Tokens.Count => forcing.Tokens[Steps],
        { EndsText: true } => _textEnded ? vocabulary.Tokens.PadText : vocabulary.Tokens.EndOfText,
        _ => null,
    };

    /// <summary>Whether the next step needs the text head's logits: not once the text has ended, nor while it is forced (or streamed).</summary>
    public bool SamplesText => streamed is null && !_textEnded && ForcedText is null;

    // The next streamed token; EOT once the text has ended and every token was taken, PAD_T after; null while it is to come.
    private int? StreamedForcedText()
    {
        if (_textEnded)
        {
            return vocabulary.Tokens.PadText;
        }

        if (streamed!.TryGet(Steps, out int token, out bool ended))
        {
            return token;
        }

        return ended ? vocabulary.Tokens.EndOfText : null;
    }

    /// <summary>
    /// Applies the rules to one step's sampled tokens. Returns the step to keep (and feed back), or null when the answer
    /// stops here (the step is not kept).
    /// </summary>
    public StepTokens? Accept(int[] sampledAudio, int sampledText)
    {
        var tokens = vocabulary.Tokens;
        if (Steps >= MaxSteps)
        {
            return null;
        }

        if (speaks)
        {
            if (Steps > 0 && sampledAudio[LastAudioLayer] == tokens.EndOfAudio)
            {
                return null;
            }

            int text = _textEnded ? tokens.PadText : sampledText;
            _textEnded |= sampledText == tokens.EndOfText;
            Steps++;
            return new StepTokens(sampledAudio, text);
        }

        if (sampledText == tokens.EndOfText)
        {
            _textEnded = true;
            return null;
        }

        Steps++;
        return new StepTokens([.. Enumerable.Repeat(tokens.PadAudio, vocabulary.AudioLayerCount)], sampledText);
    }

    /// <summary>The eight stream ids to feed back for a kept step: its audio (shifted) on a speaking row, PAD_A elsewhere, and its text.</summary>
    public int[] NextInput(StepTokens step, bool speakingRow)
    {
        var input = new int[vocabulary.AudioLayerCount + 1];
        for (int layer = 0; layer < vocabulary.AudioLayerCount; layer++)
        {
            input[layer] = vocabulary.AudioRow(layer, speakingRow ? step.Audio[layer] : vocabulary.Tokens.PadAudio);
        }

        input[^1] = step.Text;
        return input;
    }
}
