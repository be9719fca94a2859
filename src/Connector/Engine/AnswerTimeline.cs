using System.Diagnostics;

namespace MiniOmni.SK.Engine;

/// <summary>
/// Where one answer's time to its first speech went, stage by stage, in seconds from the request: waiting for the encoder,
/// the log-mel, the encoder and adapter, the prompt (waiting to be admitted, then its decodes), the steps up to the one
/// that completed the codec's first chunk, the wait for the codec's turn between decodes, and the codec itself. Written by
/// the engine's stages as they pass (each mark once, by one thread at a time), read once the answer has completed.
/// </summary>
internal sealed class AnswerTimeline(Stopwatch clock)
{
    private double Now => clock.Elapsed.TotalSeconds;

    /// <summary>When the request came (a <see cref="Stopwatch.GetTimestamp"/> value): a host's own time before and after the engine is measured against it.</summary>
    public long StartTimestamp { get; } = Stopwatch.GetTimestamp() - clock.ElapsedTicks;

    /// <summary>The encoder was free for this question (it encodes one question at a time).</summary>
    public double EncoderFree { get; private set; } = double.NaN;

    /// <summary>The log-mel spectrogram was computed.</summary>
    public double MelDone { get; private set; } = double.NaN;

    /// <summary>The encoder and adapter had run (or an encoding made ahead was taken).</summary>
    public double EncodeDone { get; private set; } = double.NaN;

    /// <summary>Whether the encoding was made ahead of the request (while the speaker paused).</summary>
    public bool EncodedAhead { get; private set; }

    /// <summary>The answer was handed to the decode scheduler.</summary>
    public double Submitted { get; private set; } = double.NaN;

    /// <summary>Its first prompt positions went into a decode.</summary>
    public double PromptStarted { get; private set; } = double.NaN;

    /// <summary>Prompt positions decoded, and decodes that held them.</summary>
    public int PromptPositionsDecoded { get; private set; }

    /// <summary>Decodes that held the prompt (or a slice of it).</summary>
    public int PromptDecodes { get; private set; }

    /// <summary>Prompt positions shared from another sequence's cache (a kept preamble) instead of decoded.</summary>
    public int PromptPositionsReused { get; private set; }

    /// <summary>The first step (sampled from the prompt's last position) was kept: the prompt is done.</summary>
    public double FirstStep { get; private set; } = double.NaN;

    /// <summary>Steps kept when the codec's first chunk became due.</summary>
    public int StepsToFirstChunk { get; private set; }

    /// <summary>The step that completed the first chunk's frames reached the answer's reader.</summary>
    public double FirstChunkDue { get; private set; } = double.NaN;

    /// <summary>The codec started on the first chunk (on the scheduler's thread, between decodes).</summary>
    public double CodecStarted { get; private set; } = double.NaN;

    /// <summary>Steps the answer had kept when the codec started on its first chunk (it holds for it: no more than <see cref="StepsToFirstChunk"/>).</summary>
    public int StepsAtCodecStart { get; set; }

    /// <summary>The codec finished the first chunk.</summary>
    public double CodecDone { get; private set; } = double.NaN;

    /// <summary>Frames the first chunk held (its own, not its lookahead).</summary>
    public int FirstChunkFrames { get; set; }

    /// <summary>The first speech was handed to the caller.</summary>
    public double FirstSpeech { get; private set; } = double.NaN;

    public void MarkEncoderFree() => EncoderFree = Now;

    public void MarkMelDone() => MelDone = Now;

    public void MarkEncodeDone(bool ahead)
    {
        EncodeDone = Now;
        EncodedAhead = ahead;
    }

    public void MarkSubmitted() => Submitted = Now;

    public void MarkPromptDecode(int positions)
    {
        if (PromptDecodes == 0)
        {
            PromptStarted = Now;
        }

        PromptDecodes++;
        PromptPositionsDecoded += positions;
    }

    public void MarkPromptReused(int positions) => PromptPositionsReused += positions;

    public void MarkFirstStep()
    {
        if (double.IsNaN(FirstStep))
        {
            FirstStep = Now;
        }
    }

    public void MarkFirstChunkDue(int steps)
    {
        if (double.IsNaN(FirstChunkDue))
        {
            FirstChunkDue = Now;
            StepsToFirstChunk = steps;
        }
    }

    public void MarkCodecStarted()
    {
        if (double.IsNaN(CodecStarted))
        {
            CodecStarted = Now;
        }
    }

    public void MarkCodecDone()
    {
        if (double.IsNaN(CodecDone))
        {
            CodecDone = Now;
        }
    }

    public void MarkFirstSpeech()
    {
        if (double.IsNaN(FirstSpeech))
        {
            FirstSpeech = Now;
        }
    }

    /// <summary>
    /// The stages as consecutive spans in seconds, which add up to <see cref="FirstSpeech"/> (a span whose marks are
    /// missing, e.g. the encoder's for a typed question, is left out).
    /// </summary>
    public IReadOnlyDictionary<string, double> Stages()
    {
        var stages = new Dictionary<string, double>();
        double last = 0;
        void Span(string name, double at)
        {
            if (!double.IsNaN(at))
            {
                stages[name] = at - last;
                last = at;
            }
        }

        Span("encoder_wait", EncoderFree);
        Span("mel", MelDone);
        Span("encoder_and_adapter", EncodeDone);
        Span("to_scheduler", Submitted);
        Span("admission", PromptStarted);
        Span("prompt", FirstStep);
        Span("steps", FirstChunkDue);
        Span("codec_wait", CodecStarted);
        Span("codec", CodecDone);
        Span("delivery", FirstSpeech);
        return stages;
    }
}
