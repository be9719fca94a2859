namespace MiniOmni.SK.Speech;

/// <summary>How the streaming decoder trades latency for seamless audio and for codec time.</summary>
/// <param name="ChunkFrames">Frames emitted in the first chunk (4 = 8192 samples, as the release).</param>
/// <param name="LeftContextFrames">Already-emitted frames decoded again before each chunk, so its start continues the previous chunk.</param>
/// <param name="LookaheadFrames">Frames decoded after each chunk but held back until the next, so its end is settled.</param>
/// <param name="MaxChunkFrames">
/// Each later chunk doubles, up to this many frames (0: every chunk is <paramref name="ChunkFrames"/>). Larger chunks
/// spend less of the codec's time on context frames; the speech already emitted covers the wait for them as long as
/// answers are generated faster than half real time.
/// </param>
internal sealed record StreamingOptions(int ChunkFrames = 4, int LeftContextFrames = 1, int LookaheadFrames = 1, int MaxChunkFrames = 0)
{
    /// <summary>
    /// What the engine streams with: a 2-frame first chunk (170 ms of speech, due 10 steps into the answer: the delay
    /// pattern's 8, its 2 frames, one of lookahead; the release's 4-frame chunk came a step later than a 4-frame one of
    /// ours would), doubling to 16 frames, one frame of context each side. Each chunk's speech lasts longer than the steps
    /// and codec run that bring the next, so a player that starts with the first never runs dry while the answer is
    /// generated faster than real time.
    /// </summary>
    public static StreamingOptions Speech { get; } = new(2, 1, 1, MaxChunkFrames: 16);

    /// <summary>Two frames of context each side: indistinguishable from decoding the whole answer (~95 dB on the fixture), one frame more latency.</summary>
    public static StreamingOptions NearExact { get; } = new(4, 2, 2);

    /// <summary>The release's schedule: every chunk decoded on its own (clicks at the seams).</summary>
    public static StreamingOptions Isolated { get; } = new(4, 0, 0);

    /// <summary>The largest chunk, in frames.</summary>
    public int LargestChunkFrames => Math.Max(ChunkFrames, MaxChunkFrames);

    /// <summary>Frames one decode call covers at most.</summary>
    public int WindowFrames => LeftContextFrames + LargestChunkFrames + LookaheadFrames;

    /// <summary>Checks the options.</summary>
    public void Validate()
    {
        if (ChunkFrames <= 0 || LeftContextFrames < 0 || LookaheadFrames < 0 || MaxChunkFrames < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ChunkFrames), $"Streaming needs a positive chunk and non-negative context; got {this}.");
        }
    }
}

/// <summary>
/// Turns frames into speech as they are generated. Each chunk is decoded with frames of context on both sides and only
/// its own samples are emitted, so the joined stream matches decoding the whole answer at once far better than the
/// release's isolated chunks, at the cost of <see cref="StreamingOptions.LookaheadFrames"/> frames of latency.
/// One instance per answer; not thread-safe.
/// </summary>
internal sealed class StreamingSnacDecoder(SnacDecoder decoder, int samplesPerFrame, StreamingOptions? options = null)
{
    private readonly StreamingOptions _options = Validated(options ?? new StreamingOptions(), decoder);
    private readonly List<int[]> _frames = [];
    private int _emittedFrames;
    private int _chunkFrames = (options ?? new StreamingOptions()).ChunkFrames;

    /// <summary>Frames received so far.</summary>
    public int FrameCount => _frames.Count;

    /// <summary>Frames whose speech has been emitted.</summary>
    public int EmittedFrames => _emittedFrames;

    /// <summary>Frames received by the time the next chunk is due.</summary>
    public int FramesForNextChunk => _emittedFrames + _chunkFrames + _options.LookaheadFrames;

    /// <summary>Whether enough frames arrived for the next chunk (<see cref="DecodeDueChunk"/> decodes it).</summary>
    public bool ChunkDue => _frames.Count - _emittedFrames >= _chunkFrames + _options.LookaheadFrames;

    /// <summary>Adds one frame (seven audio tokens) and returns the speech that became due, or an empty array.</summary>
    public float[] Append(int[] frame)
    {
        Add(frame);
        return DecodeDueChunk();
    }

    /// <summary>Adds one frame (seven audio tokens) without decoding; returns <see cref="ChunkDue"/>.</summary>
    public bool Add(int[] frame)
    {
        _frames.Add(frame);
        return ChunkDue;
    }

    /// <summary>Decodes and returns the chunk that is due, or an empty array when none is.</summary>
    public float[] DecodeDueChunk() => ChunkDue ? Emit(_emittedFrames + _chunkFrames) : [];

    /// <summary>Emits every frame not yet emitted (the answer has ended).</summary>
    public float[] Flush()
    {
        var pieces = new List<float[]>();
        while (_emittedFrames < _frames.Count)
        {
            pieces.Add(Emit(Math.Min(_frames.Count, _emittedFrames + _chunkFrames)));
        }

        return [.. pieces.SelectMany(p => p)];
    }

    private float[] Emit(int emitEnd)
    {
        int windowStart = Math.Max(0, _emittedFrames - _options.LeftContextFrames);
        int windowEnd = Math.Min(_frames.Count, emitEnd + _options.LookaheadFrames);
        var codes = SnacCodes.FromFrames(_frames.GetRange(windowStart, windowEnd - windowStart));
        float[] window = decoder.Decode(codes);
        int from = (_emittedFrames - windowStart) * samplesPerFrame;
        int to = (emitEnd - windowStart) * samplesPerFrame;
        _emittedFrames = emitEnd;
        _chunkFrames = Math.Min(2 * _chunkFrames, _options.LargestChunkFrames);
        return window[from..to];
    }

    private static StreamingOptions Validated(StreamingOptions options, SnacDecoder decoder)
    {
        options.Validate();
        return options.WindowFrames <= decoder.MaxFrames
            ? options
            : throw new ArgumentOutOfRangeException(nameof(options), $"A streaming window of {options.WindowFrames} frames exceeds the decoder's {decoder.MaxFrames}.");
    }
}
