using System.Threading.Channels;
using LLama.Native;
using MiniOmni.SK.ModelFiles;

namespace MiniOmni.SK.Engine;

/// <summary>One answer's request to the decode scheduler.</summary>
/// <param name="Task">What to do.</param>
/// <param name="Prompt">The speaking (or only) row's prompt.</param>
/// <param name="ThinkingPrompt">The text-only row of a batch-parallel answer, or null.</param>
/// <param name="AudioFeatures">Adapter output for the prompt's audio positions ([frames x width]), or empty.</param>
/// <param name="Sampling">How heads pick tokens.</param>
/// <param name="MaxSteps">The most steps (the first, from the prompt, included).</param>
internal sealed record GenerationRequest(MiniOmniTask Task, Prompt Prompt, Prompt? ThinkingPrompt, float[] AudioFeatures, SamplingOptions Sampling, int MaxSteps)
{
    /// <summary>Sequences the answer decodes: two for batch-parallel (speaking and thinking rows), else one.</summary>
    public int SequenceCount => ThinkingPrompt is null ? 1 : 2;

    /// <summary>Text fed to the text stream instead of sampling it (reading aloud, a required answer prefix), or null.</summary>
    public TextForcing? ForcedText { get; init; }

    /// <summary>The answer's text as a thinker writes it, forced as it comes (a streamed read-aloud), or null.</summary>
    public StreamedText? StreamedText { get; init; }

    /// <summary>Whether the answer speaks (its audio heads are sampled and fed back).</summary>
    public bool Speaks => Task is MiniOmniTask.A1A2 or MiniOmniTask.T1A2 or MiniOmniTask.ReadAloud;

    /// <summary>
    /// KV cache cells the answer may fill. The thinking row shares the speaking row's prompt cells, so a batch-parallel
    /// answer needs the prompt once and the answer's positions twice.
    /// </summary>
    public long CacheCells => Prompt.Length + (long)SequenceCount * MaxSteps;

    /// <summary>Why the answer ends when it reaches <see cref="MaxSteps"/>: its budget, or the model's context.</summary>
    public AnswerStopReason StepLimitReason { get; init; } = AnswerStopReason.Budget;

    /// <summary>The model directory, which an answer whose first step turns NaN or Inf names in its error.</summary>
    public string ModelDirectory { get; init; } = "";

    /// <summary>Who the preamble kept after this answer belongs to (see <see cref="MiniOmniRequest.CacheOwner"/>), or null.</summary>
    public object? CacheOwner { get; init; }

    /// <summary>
    /// A preamble decoded ahead of the answer that will start with it (<see cref="DecodeScheduler.KeepAhead"/>): the row
    /// decodes its prompt, computes no head and takes no step, and the prompt cache keeps its positions.
    /// </summary>
    public bool KeepsPromptOnly { get; init; }

    /// <summary>Where the answer's time to first speech goes; null when nobody asks.</summary>
    public AnswerTimeline? Timeline { get; init; }

    /// <summary>
    /// The step after which the answer holds until its reader releases it (0: never): the step that completes the codec's
    /// first chunk, so the chunk is decoded before the next step rather than after it (see <see cref="AnswerSequence.HoldAfterStep"/>).
    /// </summary>
    public int SpeechHoldStep { get; init; }
}

/// <summary>
/// One answer on its way through the backbone: its prompt (a batch-parallel answer decodes the shared prefix once and
/// shares its cache with the thinking row), then one step per decode, sampled and checked against the release's rules,
/// until a stop rule or the budget ends it. The scheduler asks it for rows, decodes them with other answers' rows, then
/// lets it read its logits. Steps are published to <see cref="Steps"/> as they are kept.
/// </summary>
internal sealed class AnswerSequence
{
    private enum Phase
    {
        /// <summary>Decoding the prompt positions that every row shares.</summary>
        SharedPrompt,
        /// <summary>Decoding each row's last prompt position (batch-parallel only).</summary>
        RowPrompts,
        /// <summary>Feeding back the last kept step.</summary>
        Step,
    }

    private readonly GenerationRequest _request;
    private readonly EmbeddingMix _mix;
    private readonly MiniOmniVocabulary _vocabulary;
    private readonly DecodingRules _rules;
    private readonly TokenSampler _sampler;
    private float[][]? _promptEmbeddings;
    private readonly float[] _stepEmbedding;
    private readonly Channel<StepTokens> _steps = Channel.CreateUnbounded<StepTokens>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly List<int> _outputRows = [];
    private readonly bool _speaks;
    private readonly int _sharedLength;
    private Phase _phase = Phase.SharedPrompt;
    private int _decodedPrompt;
    private int _rowsInBatch;
    private int _position;
    private StepTokens _lastStep;
    private int _holdAfterStep;
    private bool _held;

    public AnswerSequence(GenerationRequest request, EmbeddingMix mix, MiniOmniVocabulary vocabulary, CancellationToken cancellationToken)
    {
        _request = request;
        _mix = mix;
        _vocabulary = vocabulary;
        _speaks = request.Speaks;
        _rules = new DecodingRules(vocabulary, _speaks, request.MaxSteps, request.ForcedText, request.StreamedText);
        _sampler = new TokenSampler(request.Sampling);
        _stepEmbedding = new float[mix.Width];
        // Rows of a batch-parallel answer differ only at the last prompt position.
        _sharedLength = request.ThinkingPrompt is null ? request.Prompt.Length : request.Prompt.Length - 1;
        Cancellation = cancellationToken;
        _holdAfterStep = request.SpeechHoldStep;
    }

    /// <summary>The request this answer serves.</summary>
    public GenerationRequest Request => _request;

    /// <summary>The caller's cancellation: the scheduler drops the answer and frees its cache when it fires.</summary>
    public CancellationToken Cancellation { get; }

    /// <summary>The kept steps, in order; completes when the answer ends, with the error if it failed.</summary>
    public ChannelReader<StepTokens> Steps => _steps.Reader;

    /// <summary>The sequences the scheduler gave this answer: the speaking (or only) row first.</summary>
    public LLamaSeqId[] Sequences { get; set; } = [];

    /// <summary>Whether the answer is still decoding its prompt.</summary>
    public bool InPrompt => _phase == Phase.SharedPrompt;

    /// <summary>
    /// A row that yields to answers (a question's transcript): admitted only while no answer waits, on a side sequence,
    /// so it never holds up an answer's admission.
    /// </summary>
    public bool YieldsToAnswers { get; init; }

    /// <summary>
    /// An answer whose first <see cref="DonorPositions"/> prompt positions equal this one's (the same preamble and
    /// question features): once it has decoded them, they are shared with this row instead of decoded again.
    /// </summary>
    public AnswerSequence? PromptDonor { get; init; }

    /// <summary>The prompt positions shared with <see cref="PromptDonor"/>.</summary>
    public int DonorPositions { get; init; }

    /// <summary>The most leading prompt positions another sequence's cache may provide: token-determined ones, and never the last shared one.</summary>
    public int ReusablePositions => Math.Min(_request.Prompt.TokenPositions, _sharedLength - 1);

    /// <summary>The prompt positions of the speaking (or only) row decoded so far (or provided by <see cref="SkipPrompt"/>).</summary>
    public int DecodedPromptPositions => _phase == Phase.SharedPrompt ? _decodedPrompt : _sharedLength;

    /// <summary>The leading prompt positions shared from another sequence's cache (<see cref="SkipPrompt"/>) rather than decoded.</summary>
    public int ReusedPromptPositions { get; private set; }

    /// <summary>
    /// Takes the first <paramref name="positions"/> prompt positions as decoded: the scheduler has shared another
    /// sequence's cache of the same positions into this answer's speaking row. Only before the first decode.
    /// </summary>
    public void SkipPrompt(int positions)
    {
        if (_phase != Phase.SharedPrompt || _decodedPrompt != 0 || positions < 0 || positions >= _sharedLength)
        {
            throw new InvalidOperationException($"{positions} prompt positions cannot be skipped (of {_sharedLength}, {_decodedPrompt} decoded).");
        }

        _decodedPrompt = positions;
        ReusedPromptPositions = positions;
        _request.Timeline?.MarkPromptReused(positions);
    }

    /// <summary>
    /// Whether the answer holds after a step until its reader releases it: its reader has a chunk of speech to decode
    /// from that step, which runs between decodes (<see cref="DecodeScheduler.RunBetweenStepsAsync"/>). Holding the answer's
    /// next step for it puts the speech out a step sooner; the step then follows the codec, as it would have a step later.
    /// </summary>
    public bool HeldForSpeech => _held;

    /// <summary>Holds the answer after its step <paramref name="step"/> (counted from 1; 0: no hold). On the scheduler's thread only.</summary>
    public void HoldAfterStep(int step) => _holdAfterStep = step;

    /// <summary>Steps kept so far. On the scheduler's thread only.</summary>
    public int StepsKept => _rules.Steps;

    /// <summary>Lets a held answer go on. On the scheduler's thread only.</summary>
    public void ReleaseHold() => _held = false;

    /// <summary>Why the answer ended, once <see cref="OnDecoded"/> has returned false.</summary>
    public AnswerStopReason StopReason { get; private set; } = AnswerStopReason.EndOfAnswer;

    /// <summary>
    /// Whether the answer waits for its streamed text: its next step needs a token that has not come, so it adds no rows
    /// until the text's writer wakes the scheduler.
    /// </summary>
    public bool WaitsForText => _phase == Phase.Step && _rules.WaitsForText;

    /// <summary>The rows <see cref="AddRows"/> would add next, given room for <paramref name="capacity"/> (each a new cache cell).</summary>
    public int RowsWanted(int capacity) => _phase switch
    {
        Phase.SharedPrompt => Math.Min(_sharedLength - _decodedPrompt, capacity),
        Phase.RowPrompts => Sequences.Length,
        _ => _rules.TextEnded ? 1 : Sequences.Length,
    };

    /// <summary>Adds this answer's rows for the next decode: its next prompt positions (at most <paramref name="capacity"/>), or one row per sequence.</summary>
    /// <returns>The rows added.</returns>
    public int AddRows(BackboneBatch batch, int capacity)
    {
        _outputRows.Clear();
        int width = _mix.Width;
        // Mixed here, on the scheduler's thread, which alone reads the backbone file while the engine lives.
        _promptEmbeddings ??= [.. (_request.ThinkingPrompt is { } thinking ? [_request.Prompt, thinking] : new[] { _request.Prompt })
            .Select(p => _mix.MixPrompt(p.Streams, _request.AudioFeatures, p.AudioFeatureStart))];
        int promptLength = _request.Prompt.Length;
        switch (_phase)
        {
            case Phase.SharedPrompt:
                int end = Math.Min(_sharedLength, _decodedPrompt + capacity);
                for (int position = _decodedPrompt; position < end; position++)
                {
                    bool last = position == promptLength - 1 && !_request.KeepsPromptOnly;
                    AddRow(batch, _promptEmbeddings[0].AsSpan(position * width, width), position, Sequences[0], last ? HeadsOf(0) : OutputHeadSet.None);
                }

                _rowsInBatch = end - _decodedPrompt;
                _request.Timeline?.MarkPromptDecode(_rowsInBatch);
                break;
            case Phase.RowPrompts:
                for (int row = 0; row < Sequences.Length; row++)
                {
                    AddRow(batch, _promptEmbeddings[row].AsSpan((promptLength - 1) * width, width), promptLength - 1, Sequences[row], HeadsOf(row));
                }

                _rowsInBatch = Sequences.Length;
                break;
            case Phase.Step:
                // Once the text has ended, a batch-parallel answer's thinking row has nothing left to say (its text is
                // forced to PAD_T) and the speaking row never attends to it: it is no longer decoded.
                int rows = _rules.TextEnded ? 1 : Sequences.Length;
                for (int row = 0; row < rows; row++)
                {
                    _mix.Mix(_rules.NextInput(_lastStep, speakingRow: _speaks && row == 0), default, _stepEmbedding);
                    AddRow(batch, _stepEmbedding, _position, Sequences[row], HeadsOf(row));
                }

                _rowsInBatch = rows;
                break;
        }

        return _rowsInBatch;
    }

    /// <summary>
    /// Takes the results of the decode that held this answer's rows: advances through the prompt, or samples a step,
    /// applies the release's rules and publishes it.
    /// </summary>
    /// <returns>
    /// Whether the answer goes on. When it does not, the scheduler completes <see cref="Steps"/> once it has freed (or kept)
    /// the answer's cache, so that whoever sees the end finds the cache as the answer left it.
    /// </returns>
    public bool OnDecoded(IBackbone backbone)
    {
        // The first step is checked for NaN and Inf (damaged weights or features), which would otherwise be sampled as noise;
        // later steps are not (the check of one step costs a pass over its logits).
        bool firstStep = _phase != Phase.Step;
        if (_phase == Phase.SharedPrompt)
        {
            _decodedPrompt += _rowsInBatch;
            if (_decodedPrompt < _sharedLength)
            {
                return true;
            }

            if (_request.KeepsPromptOnly)
            {
                return false;
            }

            if (Sequences.Length > 1)
            {
                for (int row = 1; row < Sequences.Length; row++)
                {
                    backbone.CopySequence(Sequences[0], Sequences[row], 0, _sharedLength);
                }

                _phase = Phase.RowPrompts;
                return true;
            }
        }

        // Audio from the speaking row; text from the thinking row when there is one, and only until it has ended.
        if (firstStep)
        {
            foreach (int row in _outputRows)
            {
                ThrowIfNotFinite(backbone.HiddenState(row).Span, "backbone hidden states", "the backbone's hidden state", "backbone.gguf's weights, or the audio features fed to it (audio.gguf's encoder and adapter)");
            }
        }

        var audio = new int[_vocabulary.AudioLayerCount];
        if (_speaks)
        {
            var speakingLogits = backbone.Logits(_outputRows[0]);
            if (firstStep)
            {
                ThrowIfNotFinite(speakingLogits, "output heads' logits", "the audio heads' logits");
            }

            for (int layer = 0; layer < audio.Length; layer++)
            {
                audio[layer] = _sampler.Sample(speakingLogits[_vocabulary.AudioHead(layer)]);
            }
        }

        // A forced text token (read aloud, or a required prefix) is taken as it is: its head was never computed. Streamed
        // text is only ever stepped once its token has come (the scheduler leaves a waiting answer out of the decode, and
        // tokens are never taken back), and a streamed answer starts only after its first token.
        if (_rules.WaitsForText)
        {
            throw new InvalidOperationException("A streamed answer was decoded before its next token came.");
        }

        int text;
        if (_rules.ForcedText is { } forced)
        {
            text = forced;
        }
        else if (_rules.TextEnded)
        {
            text = _vocabulary.Tokens.PadText;
        }
        else
        {
            var textLogits = backbone.Logits(_outputRows[^1]);
            if (firstStep)
            {
                ThrowIfNotFinite(textLogits, "output heads' logits", "the text head's logits");
            }

            text = _sampler.Sample(textLogits[_vocabulary.TextHead]);
        }

        if (_rules.Accept(audio, text) is not { } step)
        {
            StopReason = AnswerStopReason.EndOfAnswer;
            return false;
        }

        _steps.Writer.TryWrite(step);
        _request.Timeline?.MarkFirstStep();
        if (_rules.Steps >= _rules.MaxSteps)
        {
            StopReason = _request.StepLimitReason;
            return false;
        }

        _held = _rules.Steps == _holdAfterStep;
        _position = _phase == Phase.Step ? _position + 1 : _request.Prompt.Length;
        _lastStep = step;
        _phase = Phase.Step;
        return true;
    }

    /// <summary>Ends the answer's steps normally; <paramref name="reason"/>, when given, says why (the scheduler ended it).</summary>
    public void Complete(AnswerStopReason? reason = null)
    {
        StopReason = reason ?? StopReason;
        _steps.Writer.TryComplete();
    }

    /// <summary>Ends the answer's steps with <paramref name="error"/>.</summary>
    public void Fail(Exception error) => _steps.Writer.TryComplete(error);

    /// <summary>
    /// The heads row <paramref name="row"/>'s next step samples: a batch-parallel speaking row only the audio heads and its
    /// thinking row only the text head; a lone speaking row both until its text ends, then only audio; a text answer only text.
    /// While the text is forced, no row computes the text head (a forced step of a text answer computes no head at all).
    /// </summary>
    private OutputHeadSet HeadsOf(int row) => (_speaks, Sequences.Length > 1, row) switch
    {
        (false, _, _) => _rules.SamplesText ? OutputHeadSet.Text : OutputHeadSet.None,
        (true, true, 0) => OutputHeadSet.Audio,
        (true, true, _) => _rules.SamplesText ? OutputHeadSet.Text : OutputHeadSet.None,
        (true, false, _) => _rules.SamplesText ? OutputHeadSet.TextAndAudio : OutputHeadSet.Audio,
    };

    private void ThrowIfNotFinite(RowLogits logits, string stage, string what)
    {
        ThrowIfNotFinite(logits.Values.Span, stage, what, "vocabulary.gguf's output head (the text and audio-codebook heads), or the hidden state it reads");
        ThrowIfNotFinite(logits.SecondValues.Span, stage, what, "vocabulary.gguf's output head (the text and audio-codebook heads), or the hidden state it reads");
    }

    // A NaN or an infinity where the model computes its answer: damaged weights, never speech.
    private void ThrowIfNotFinite(ReadOnlySpan<float> values, string stage, string what, string suspects)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw new ModelFileException(
                    _request.ModelDirectory,
                    $"the first step of the answer computed {values[i]} in {what} (element {i} of {values.Length}): the model's weights hold NaN or Inf ({suspects}); check it with `miniomni inspect`.",
                    stage);
            }
        }
    }

    private void AddRow(BackboneBatch batch, ReadOnlySpan<float> embedding, int position, LLamaSeqId sequence, OutputHeadSet heads)
    {
        if (heads != OutputHeadSet.None)
        {
            _outputRows.Add(batch.EmbeddingsCount);
        }

        batch.Add(embedding, (LLamaPos)position, sequence, heads);
    }
}
