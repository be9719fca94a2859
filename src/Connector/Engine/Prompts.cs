using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Engine;

/// <summary>What Mini-Omni is asked to do: the release's five tasks, and reading a text aloud.</summary>
public enum MiniOmniTask
{
    /// <summary>Speech in, speech and text out.</summary>
    A1A2,
    /// <summary>Speech in, text out.</summary>
    A1T2,
    /// <summary>Speech in, its transcription out.</summary>
    Asr,
    /// <summary>Text in, speech and text out.</summary>
    T1A2,
    /// <summary>Text in, text out.</summary>
    T1T2,
    /// <summary>
    /// Text in, that very text spoken (MiniOmni.SK's, not a task of the release): the text stream is fed the text's tokens,
    /// then EOT, instead of being sampled, and the audio heads speak it. The prompt is T1A2's with the text as the question.
    /// </summary>
    ReadAloud,
}

/// <summary>The id spaces of Mini-Omni's eight streams, as the audio GGUF states them.</summary>
internal sealed record MiniOmniVocabulary(int TextVocabularySize, int AudioVocabularySize, int AudioLayerCount, int RowCount, SpecialTokens Tokens)
{
    /// <summary>From the audio file's parameters.</summary>
    public static MiniOmniVocabulary From(AudioModelParameters parameters) => new(
        parameters.TextVocabularySize, parameters.AudioVocabularySize, parameters.AudioLayerCount, parameters.PaddedVocabularySize, parameters.Tokens);

    /// <summary>The embedding and logit row of audio code <paramref name="code"/> on layer <paramref name="layer"/>.</summary>
    public int AudioRow(int layer, int code) => TextVocabularySize + AudioVocabularySize * layer + code;

    /// <summary>The logit rows of audio head <paramref name="layer"/>.</summary>
    public Range AudioHead(int layer) => AudioRow(layer, 0)..AudioRow(layer + 1, 0);

    /// <summary>The logit rows of the text head.</summary>
    public Range TextHead => 0..TextVocabularySize;
}

/// <summary>
/// A prompt's eight streams (seven audio layers, already shifted, then text) and where adapter features replace the
/// audio rows.
/// </summary>
internal sealed record Prompt(int[][] Streams, int AudioFeatureStart, int AudioFeatureCount)
{
    /// <summary>Positions in the prompt.</summary>
    public int Length => Streams[0].Length;

    /// <summary>Positions of the text prefix ahead of the release's prompt (a preamble), 0 for none.</summary>
    public int PrefixLength { get; init; }

    /// <summary>
    /// The leading positions whose embeddings follow from their tokens alone (the adapter's features come later): the
    /// positions another prompt with the same tokens can share in the cache.
    /// </summary>
    public int TokenPositions => AudioFeatureCount > 0 ? AudioFeatureStart : Length;
}

/// <summary>Builds the release's prompts (spec section 3), optionally after a text prefix of MiniOmni.SK's own.</summary>
/// <remarks>
/// The prefix (system instructions, earlier turns) is MiniOmni.SK's extension, not the release's behaviour: its text ids
/// go on the text stream before INPUT_T, with PAD_A on every audio layer. Without one, the prompts are exactly the release's.
/// </remarks>
internal sealed class PromptBuilder(MiniOmniVocabulary vocabulary)
{
    private SpecialTokens Tokens => vocabulary.Tokens;

    /// <summary>A speech-in prompt for <paramref name="featureFrames"/> adapter frames.</summary>
    public Prompt ForAudio(MiniOmniTask task, int featureFrames, IReadOnlyList<int>? prefix = null)
    {
        if (task is not (MiniOmniTask.A1A2 or MiniOmniTask.A1T2 or MiniOmniTask.Asr))
        {
            throw new ArgumentException($"{task} does not take speech in.", nameof(task));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(featureFrames);
        var audio = new List<int> { Tokens.InputAudio };
        audio.AddRange(Enumerable.Repeat(Tokens.PadAudio, featureFrames));
        audio.Add(Tokens.EndOfAudio);
        audio.Add(task == MiniOmniTask.A1A2 ? Tokens.AnswerAudio : Tokens.PadAudio);
        var text = new List<int> { Tokens.InputText };
        text.AddRange(Enumerable.Repeat(Tokens.PadText, featureFrames));
        text.Add(Tokens.EndOfText);
        text.Add(task == MiniOmniTask.Asr ? Tokens.Asr : Tokens.AnswerText);
        return Assemble(audio, text, prefix, audioFeatureStart: 1, featureFrames);
    }

    /// <summary>A text-in prompt for the tokenized question <paramref name="textIds"/> (no BOS, no specials).</summary>
    public Prompt ForText(MiniOmniTask task, IReadOnlyList<int> textIds, IReadOnlyList<int>? prefix = null)
    {
        if (task is not (MiniOmniTask.T1A2 or MiniOmniTask.T1T2))
        {
            throw new ArgumentException($"{task} does not take text in.", nameof(task));
        }

        if (textIds.Count == 0)
        {
            throw new ArgumentException("The question has no tokens.", nameof(textIds));
        }

        var audio = Enumerable.Repeat(Tokens.PadAudio, textIds.Count + 2).ToList();
        audio.Add(task == MiniOmniTask.T1A2 ? Tokens.AnswerAudio : Tokens.PadAudio);
        var text = new List<int> { Tokens.InputText };
        text.AddRange(textIds);
        text.Add(Tokens.EndOfText);
        text.Add(Tokens.AnswerText);
        return Assemble(audio, text, prefix, audioFeatureStart: 0, featureFrames: 0);
    }

    /// <summary>
    /// The read-aloud prompt for <paramref name="textIds"/>: the release's T1A2 prompt with the text itself as the question.
    /// </summary>
    /// <remarks>
    /// The text stream that follows is the text again, forced, so the model sees a question answered by its own words. The
    /// release has no read-aloud prompt; T1A2's is the closest it was trained on (text in, speech and text out, the audio
    /// heads following the text stream), and restating the text invents no instruction in a language the release was never
    /// prompted in. Whether the voice says the words is for real weights to show; the prompt is this one method.
    /// </remarks>
    public Prompt ForReadAloud(IReadOnlyList<int> textIds, IReadOnlyList<int>? prefix = null) => ForText(MiniOmniTask.T1A2, textIds, prefix);

    /// <summary>Batch-parallel speech in: the speaking row (A1A2) and the thinking row (A1T2), equal but for the last position.</summary>
    public (Prompt Speaking, Prompt Thinking) ForBatchParallel(int featureFrames, IReadOnlyList<int>? prefix = null) =>
        (ForAudio(MiniOmniTask.A1A2, featureFrames, prefix), ForAudio(MiniOmniTask.A1T2, featureFrames, prefix));

    /// <summary>
    /// A preamble alone, as every prompt built with it as <c>prefix</c> starts: decoded ahead of those prompts so that the
    /// prompt cache holds its positions (see <see cref="MiniOmniEngine.PrefillPreambleAsync(MiniOmniRequest, CancellationToken)"/>).
    /// </summary>
    public Prompt ForPreamble(IReadOnlyList<int> prefix)
    {
        ArgumentOutOfRangeException.ThrowIfZero(prefix.Count);
        return Assemble([], [], prefix, audioFeatureStart: 0, featureFrames: 0);
    }

    private Prompt Assemble(List<int> audio, List<int> text, IReadOnlyList<int>? prefix, int audioFeatureStart, int featureFrames)
    {
        int prefixLength = prefix?.Count ?? 0;
        var streams = new int[vocabulary.AudioLayerCount + 1][];
        for (int layer = 0; layer < vocabulary.AudioLayerCount; layer++)
        {
            streams[layer] = [.. Enumerable.Repeat(vocabulary.AudioRow(layer, Tokens.PadAudio), prefixLength), .. audio.Select(code => vocabulary.AudioRow(layer, code))];
        }

        streams[^1] = [.. prefix ?? [], .. text];
        return new Prompt(streams, prefixLength + audioFeatureStart, featureFrames) { PrefixLength = prefixLength };
    }
}
