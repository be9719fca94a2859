using System.Diagnostics;
using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Native;

namespace MiniOmni.SK.Engine;

/// <summary>The kept steps of a submitted answer, in order, and once they are complete, why they ended.</summary>
internal sealed class AnswerSteps(AnswerSequence answer) : ChannelReader<StepTokens>
{
    private readonly ChannelReader<StepTokens> _steps = answer.Steps;

    /// <summary>The answer itself, on its way through the scheduler.</summary>
    internal AnswerSequence Answer => answer;

    /// <summary>Why the answer ended; meaningful once the reader has completed without an error.</summary>
    public AnswerStopReason StopReason => answer.StopReason;

    /// <inheritdoc />
    public override Task Completion => _steps.Completion;

    /// <inheritdoc />
    public override bool TryRead(out StepTokens item) => _steps.TryRead(out item);

    /// <inheritdoc />
    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => _steps.WaitToReadAsync(cancellationToken);
}

/// <summary>How a <see cref="DecodeScheduler"/> shares the backbone and its cache.</summary>
internal sealed record DecodeSchedulerOptions
{
    /// <summary>The most answers decoded together; later ones wait.</summary>
    public int MaxActiveAnswers { get; init; } = 4;

    /// <summary>
    /// Cache cells an answer reserves at a time, per sequence, beyond its prompt: answers reserve what they use in
    /// slices of this many steps rather than their whole budget, so that budgets do not keep others waiting.
    /// </summary>
    public int ReserveSliceSteps { get; init; } = 64;

    /// <summary>
    /// While other answers are speaking, the longest a new answer's prompt may hold up their next step: the prompt is
    /// decoded in slices of as many positions as the measured decode costs allow in this time.
    /// </summary>
    public TimeSpan MaxPrefillPause { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The fewest prompt positions decoded at once, however slow the machine.</summary>
    public int MinPrefillSlice { get; init; } = 8;

    /// <summary>
    /// The most cache cells the prompt cache's kept prefixes hold together (0: none kept). When an answer ends, its
    /// preamble's positions are kept on a side sequence, keyed by their tokens; a later prompt that starts with the same
    /// tokens shares them instead of decoding them again. The least recently used prefix goes first: beyond this size,
    /// when an answer needs the cells, or when a side row needs the sequence.
    /// </summary>
    public long PromptCacheCells { get; init; }

    /// <summary>The shortest preamble worth keeping in the prompt cache.</summary>
    public int MinCachedPrefix { get; init; } = 8;

    /// <summary>The nice value of the scheduler's thread and its OpenMP workers (0: normal priority; see <see cref="ComputeThreadPriority"/>).</summary>
    public int ComputeNiceness { get; init; }
}

/// <summary>
/// Continuous batching over one backbone: every active answer's rows go into each step (one llama.cpp decode, or the
/// decodes the backbone's measured costs say are faster), new answers join between steps (their prompts in slices
/// that hold the others up no longer than <see cref="DecodeSchedulerOptions.MaxPrefillPause"/>), and answers that end
/// or are cancelled leave and free their cache at once. Answers beyond <see cref="MaxActiveAnswers"/>, or for which
/// the cache has no room, wait in arrival order.
/// </summary>
/// <remarks>
/// <para>
/// One thread owns the backbone, so llama.cpp is never entered concurrently; callers only exchange answers and steps
/// with it through channels. The same thread runs the answers' other frequent compute (<see cref="RunBetweenStepsAsync"/>,
/// the speech decoder) between decodes: on the CPU backend every stage runs on OpenMP, which keeps a team of worker
/// threads per calling thread, and once a process has more of them than cores libgomp stops spinning at barriers, so
/// every op of every graph, the backbone's included, waits on a futex wake-up. One calling thread keeps one team, and
/// stages taking turns on the cores is also what a small CPU does best.
/// </para>
/// <para>
/// The cache: each answer reserves its prompt and a slice of steps, and more slices as it goes. When an answer's next
/// slice does not fit, it pauses (no new answer is admitted meanwhile) until another answer frees cells; if every
/// active answer is paused, the most recently admitted ends, with <see cref="AnswerStopReason.Context"/>.
/// </para>
/// <para>
/// Failures: an error of one answer (its rows, its logits) fails that answer alone; a failed decode fails the answers
/// whose rows it held and frees their sequences. Anything else that goes wrong on the thread leaves the scheduler
/// faulted: every answer fails with the error, and later requests are refused with it.
/// </para>
/// </remarks>
internal sealed class DecodeScheduler : IDisposable
{
    private readonly IBackbone _backbone;
    private readonly EmbeddingMix _mix;
    private readonly MiniOmniVocabulary _vocabulary;
    private readonly DecodeSchedulerOptions _options;
    private readonly ILogger _logger;
    // New answers and work to run between steps, in the order they were posted.
    private readonly Channel<object> _inbox = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Queue<AnswerSequence> _waiting = new();
    // Rows that yield to answers (transcripts), admitted only while no answer waits.
    private readonly Queue<AnswerSequence> _waitingSide = new();
    private readonly Queue<BetweenStepsWork> _work = new();
    private readonly List<ActiveAnswer> _active = [];
    private readonly Stack<LLamaSeqId> _freeSequences;
    // Side sequences: rows that yield to answers, and the prompt cache's kept prefixes.
    private readonly Stack<LLamaSeqId> _freeSideSequences;
    private readonly int _sideSequences;
    private readonly List<CachedPrefix> _cached = [];
    private long _cachedCells;
    private long _cacheClock;
    private long _reusedPositions;
    private readonly Thread _thread;
    private readonly long _usableCells;
    private volatile bool _stopping;
    private bool _measuringCosts = true;
    private volatile Exception? _fault;
    private long _reservedCells;
    private long _admitted;
    private long _decodes, _stepDecodes, _rows, _decodeTicks, _stepTicks, _stepDecodeTicks, _stepHeadsTicks, _stepMixTicks, _stepSampleTicks, _workTicks, _workItems;
    private long _longestGapTicks;
    private long _pauses, _contextEnds;

    public DecodeScheduler(IBackbone backbone, EmbeddingMix mix, MiniOmniVocabulary vocabulary, int maxActiveAnswers, ILogger logger)
        : this(backbone, mix, vocabulary, new DecodeSchedulerOptions { MaxActiveAnswers = maxActiveAnswers }, logger)
    {
    }

    public DecodeScheduler(IBackbone backbone, EmbeddingMix mix, MiniOmniVocabulary vocabulary, DecodeSchedulerOptions options, ILogger logger)
    {
        int sequences = (int)backbone.Options.MaxSequences;
        int maxActiveAnswers = options.MaxActiveAnswers;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxActiveAnswers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.ReserveSliceSteps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MinPrefillSlice);
        if (sequences < 2 || backbone.Options.BatchSize < 2 * maxActiveAnswers + 1)
        {
            throw new ArgumentException(
                $"The backbone needs at least 2 sequences (it has {sequences}) and room in a batch for every answer's step ({backbone.Options.BatchSize} positions for {maxActiveAnswers} answers).",
                nameof(backbone));
        }

        _backbone = backbone;
        _mix = mix;
        _vocabulary = vocabulary;
        _options = options;
        _logger = logger;
        MaxActiveAnswers = maxActiveAnswers;
        // The backbone may pad a step with up to one row per sequence of scratch, for the length of a decode.
        _usableCells = backbone.Options.ContextSize - backbone.Options.MaxSequences;
        _freeSequences = new Stack<LLamaSeqId>(Enumerable.Range(0, sequences).Reverse().Select(id => (LLamaSeqId)id));
        _sideSequences = (int)backbone.Options.SideSequences;
        _freeSideSequences = new Stack<LLamaSeqId>(Enumerable.Range(backbone.Options.FirstSideSequence, _sideSequences).Reverse().Select(id => (LLamaSeqId)id));
        _thread = new Thread(Run) { IsBackground = true, Name = "MiniOmni decode scheduler" };
        _thread.Start();
    }

    /// <summary>The most answers decoded together; later ones wait.</summary>
    public int MaxActiveAnswers { get; }

    /// <summary>Cache positions answers may reserve (the cache, less the scratch rows that pad decodes).</summary>
    public long UsableCells => _usableCells;

    /// <summary>What the scheduler has done so far, for benchmarks and diagnostics.</summary>
    public DecodeStatistics Statistics => new(
        Volatile.Read(ref _decodes), Volatile.Read(ref _stepDecodes), Volatile.Read(ref _rows),
        Ticks(ref _decodeTicks), Ticks(ref _stepTicks), Ticks(ref _stepDecodeTicks), Ticks(ref _stepHeadsTicks), Ticks(ref _stepMixTicks), Ticks(ref _stepSampleTicks),
        Ticks(ref _workTicks), Volatile.Read(ref _workItems), Volatile.Read(ref _pauses), Volatile.Read(ref _contextEnds));

    /// <summary>What the backbone's decodes cost, as measured while the scheduler was idle (nominal until then).</summary>
    public DecodeCosts Costs => _backbone.Costs;

    /// <summary>Whether the decode costs are measured (each size is measured while the scheduler has nothing else to do).</summary>
    public bool CostsMeasured => !Volatile.Read(ref _measuringCosts);

    /// <summary>Prompt positions shared from another sequence's cache (a kept prefix, or a donor's prompt) instead of decoded.</summary>
    public long ReusedPromptPositions => Volatile.Read(ref _reusedPositions);

    /// <summary>Cache cells the prompt cache's kept prefixes hold.</summary>
    public long CachedPrefixCells => Volatile.Read(ref _cachedCells);

    /// <summary>The lengths of the prompt cache's kept prefixes, least recently used first (read on the scheduler's thread, or when idle).</summary>
    internal int[] CachedPrefixLengths() => [.. _cached.ToArray().OrderBy(c => c.LastUsed).Select(c => c.Length)];

    /// <summary>The longest time between two steps of one answer since the last call, and resets it.</summary>
    public TimeSpan TakeLongestStepGap() => TimeSpan.FromTicks(Interlocked.Exchange(ref _longestGapTicks, 0));

    /// <summary>Queues an answer; its steps arrive on the returned reader as they are kept.</summary>
    /// <exception cref="ArgumentException">The answer could never fit the cache.</exception>
    /// <exception cref="InvalidOperationException">The scheduler failed earlier and serves no more answers.</exception>
    public AnswerSteps Submit(GenerationRequest request, CancellationToken cancellationToken) => Post(request, cancellationToken, beside: false, donor: null, donorPositions: 0);

    /// <summary>
    /// Queues a row that yields to answers (a question's transcript): it waits while any answer waits, runs on a side
    /// sequence, and shares the first <paramref name="donorPositions"/> prompt positions of <paramref name="donor"/>
    /// (equal by the caller's construction) once the donor has decoded them, so they are decoded once. If the donor
    /// ends first, the row decodes its own prompt. Without side sequences it is queued as an answer.
    /// </summary>
    /// <exception cref="ArgumentException">The row could never fit the cache, or the shared positions are not part of both prompts.</exception>
    public AnswerSteps SubmitBeside(GenerationRequest request, AnswerSteps? donor, int donorPositions, CancellationToken cancellationToken)
    {
        if (donor is not null && (request.SequenceCount != 1 || donorPositions <= 0 || donorPositions >= request.Prompt.Length || donorPositions >= donor.Answer.Request.Prompt.Length))
        {
            throw new ArgumentException($"A row beside an answer shares 1 to {Math.Min(request.Prompt.Length, donor.Answer.Request.Prompt.Length) - 1} prompt positions with it; got {donorPositions}.", nameof(donorPositions));
        }

        return Post(request, cancellationToken, beside: true, donor?.Answer, donor is null ? 0 : donorPositions);
    }

    /// <summary>
    /// Decodes <paramref name="request"/>'s prompt (a preamble, <see cref="GenerationRequest.KeepsPromptOnly"/>) into the
    /// prompt cache ahead of the answers that will start with it, so that they decode only what follows. It yields to
    /// answers as a row beside them does, and adds no rows while any answer runs: it never holds up an answer.
    /// </summary>
    /// <returns>
    /// The positions decoded (not shared from a kept start of the preamble), once the preamble is kept; 0 at once when the
    /// cache keeps no preambles or this one is outside the sizes it keeps.
    /// </returns>
    /// <exception cref="OperationCanceledException">Cancelled, or it gave its cache cells up to an answer that needed them.</exception>
    public async Task<int> KeepAhead(GenerationRequest request, CancellationToken cancellationToken)
    {
        if (!request.KeepsPromptOnly)
        {
            throw new ArgumentException("Only a preamble decoded to be kept (KeepsPromptOnly) is queued ahead.", nameof(request));
        }

        int length = request.Prompt.Length;
        if (_sideSequences == 0 || length < _options.MinCachedPrefix || length > _options.PromptCacheCells)
        {
            return 0;
        }

        var row = Post(request, cancellationToken, beside: true, donor: null, donorPositions: 0);
        await row.Completion.ConfigureAwait(false);
        return row.Answer.DecodedPromptPositions - row.Answer.ReusedPromptPositions;
    }

    private AnswerSteps Post(GenerationRequest request, CancellationToken cancellationToken, bool beside, AnswerSequence? donor, int donorPositions)
    {
        ThrowIfFaulted();
        if (request.CacheCells > _usableCells)
        {
            throw new ArgumentException(
                $"The answer needs {request.CacheCells} cache positions (prompt {request.Prompt.Length}, {request.MaxSteps} steps, {request.SequenceCount} sequence(s)); the cache holds {_usableCells}.",
                nameof(request));
        }

        var answer = new AnswerSequence(request, _mix, _vocabulary, cancellationToken)
        {
            YieldsToAnswers = beside && _sideSequences > 0,
            PromptDonor = donor,
            DonorPositions = donorPositions,
        };
        Post(answer);
        return new AnswerSteps(answer);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the scheduler's thread before its next decode. For compute an answer needs often
    /// (its speech decoder), which would otherwise contend with the backbone for the cores; see the remarks.
    /// </summary>
    /// <returns>The work's result; cancelled, without running it, if <paramref name="cancellationToken"/> fires first.</returns>
    public Task<T> RunBetweenStepsAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var queued = new BetweenStepsWork<T>(work, cancellationToken);
        Post(queued);
        return queued.Result;
    }

    /// <summary>Stops after the current decode; answers still waiting or running, and work not yet run, end with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        _stopping = true;
        _inbox.Writer.TryComplete();
        if (_thread.IsAlive && Environment.CurrentManagedThreadId != _thread.ManagedThreadId)
        {
            _thread.Join();
        }

        FailQueued(Stopped());
    }

    // Cells the cost measurement's prompt takes on the scratch sequence (with margin).
    private const int MeasuringCells = 64;

    private static TimeSpan Ticks(ref long ticks) => TimeSpan.FromTicks(Volatile.Read(ref ticks));

    private static ObjectDisposedException Stopped() => new(nameof(DecodeScheduler), "The engine was disposed before the answer ended.");

    private InvalidOperationException Faulted(Exception fault) =>
        new($"The engine's decode loop failed and serves no more requests ({fault.GetType().Name}: {fault.Message}); dispose the engine and load the model again.", fault);

    /// <summary>Throws the error that faulted the scheduler, if one did: it then serves no more answers.</summary>
    public void ThrowIfFaulted()
    {
        if (_fault is { } fault)
        {
            throw Faulted(fault);
        }
    }

    /// <summary>
    /// Wakes the decode loop when it may be idle for answers that wait for streamed text: their text has come or ended, or
    /// they were cancelled. Safe from any thread, and after the scheduler stopped.
    /// </summary>
    public void Wake() => _inbox.Writer.TryWrite(WakeUp);

    private static readonly object WakeUp = new();

    private void Post(object item)
    {
        ThrowIfFaulted();
        if (!_inbox.Writer.TryWrite(item))
        {
            ThrowIfFaulted();
            throw new ObjectDisposedException(nameof(DecodeScheduler));
        }
    }

    private void Run()
    {
        // Before the first decode, so the OpenMP workers this thread starts inherit the priority.
        ComputeThreadPriority.Lower(_options.ComputeNiceness);
        var batch = new BackboneBatch(_backbone.EmbeddingLength);
        var decoded = new List<ActiveAnswer>();
        try
        {
            while (WaitForWork())
            {
                Step(batch, decoded);
            }
        }
        catch (Exception e)
        {
            Fault(e);
            return;
        }

        var stopped = Stopped();
        foreach (var slot in _active.ToList())
        {
            try
            {
                Release(slot, stopped);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "Freeing an answer while stopping failed.");
            }
        }

        FailQueued(stopped);
    }

    // One turn of the loop: the work posted between steps, then one step of every active answer that can go on.
    private void Step(BackboneBatch batch, List<ActiveAnswer> decoded)
    {
        ReadInbox();
        RunQueuedWork();
        DropCancelled();
        Admit();
        if (_active.Count == 0)
        {
            return;
        }

        long started = Stopwatch.GetTimestamp();
        BuildBatch(batch, decoded);
        if (decoded.Count == 0)
        {
            EndYoungestIfAllPaused();
            return;
        }

        long heads = _backbone.HeadsTime.Ticks;
        long decodeStarted = Stopwatch.GetTimestamp();
        try
        {
            _backbone.Decode(batch);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "A decode of {Rows} positions for {Answers} answer(s) failed.", batch.EmbeddingsCount, decoded.Count);
            // Part of the batch may have reached the cache: the answers involved end and their sequences are freed whole.
            foreach (var slot in decoded)
            {
                Release(slot, e);
            }

            return;
        }

        long decodedAt = Stopwatch.GetTimestamp();
        // Counted before the answers see their results: a caller that has seen its answer end finds its rows counted.
        Interlocked.Increment(ref _decodes);
        Interlocked.Add(ref _rows, batch.EmbeddingsCount);
        bool stepsOnly = decoded.All(slot => !slot.WasInPrompt);
        if (stepsOnly)
        {
            Interlocked.Increment(ref _stepDecodes);
        }

        foreach (var slot in decoded)
        {
            slot.Used += slot.Pending;
            bool goesOn;
            try
            {
                goesOn = slot.Answer.OnDecoded(_backbone);
            }
            catch (Exception e)
            {
                Release(slot, e);
                continue;
            }

            if (!slot.WasInPrompt && !slot.Answer.InPrompt)
            {
                RecordStep(slot, decodedAt);
            }

            if (!goesOn)
            {
                Release(slot, error: null);
            }
        }

        Record(batch, stepsOnly, started, decodeStarted, decodedAt, _backbone.HeadsTime.Ticks - heads);
    }

    // Steps first, each answer's rows within its cache reservation; prompts take the room left, in slices while others speak.
    private void BuildBatch(BackboneBatch batch, List<ActiveAnswer> decoded)
    {
        batch.Clear();
        decoded.Clear();
        int room = (int)_backbone.Options.BatchSize;
        bool speaking = _active.Any(slot => !slot.Answer.InPrompt);
        int promptRoom = speaking ? PrefillSlice() : room;
        foreach (var slot in _active.Where(s => !s.Answer.InPrompt).Concat(_active.Where(s => s.Answer.InPrompt)).ToList())
        {
            bool inPrompt = slot.Answer.InPrompt;
            if (slot.Answer.WaitsForText || slot.Answer.HeldForSpeech)
            {
                // Its text has run dry: it idles, holding its cache, until its writer wakes the loop; or its reader's codec
                // is about to run on this thread. The wait is no step gap.
                slot.LastStep = 0;
                continue;
            }

            // A preamble decoded ahead waits while any answer runs: it is there to take time off answers, never to add to one.
            if (slot.Answer.Request.KeepsPromptOnly && _active.Exists(s => !s.Answer.YieldsToAnswers))
            {
                continue;
            }

            // A preamble to keep ahead that a kept prefix already covers whole decodes nothing.
            var request = slot.Answer.Request;
            if (inPrompt && !slot.PrefixSettled && request.KeepsPromptOnly && UseCovering(request.Prompt, request.Prompt.Length, request.CacheOwner))
            {
                Release(slot, error: null);
                continue;
            }

            int capacity = Math.Min(room, inPrompt ? promptRoom : room);
            if (capacity <= 0 || (inPrompt && !slot.PrefixSettled && !SettlePrefix(slot)))
            {
                continue;
            }

            int wanted = slot.Answer.RowsWanted(capacity);
            if (!Reserve(slot, wanted) && (slot.Answer.Request.KeepsPromptOnly || !GiveWayToAnswers() || !Reserve(slot, wanted)))
            {
                slot.Paused = true;
                Interlocked.Increment(ref _pauses);
                continue;
            }

            slot.Paused = false;
            int before = batch.EmbeddingsCount;
            int added;
            try
            {
                added = slot.Answer.AddRows(batch, capacity);
            }
            catch (Exception e)
            {
                batch.Truncate(before);
                Release(slot, e);
                continue;
            }

            slot.Pending = added;
            slot.WasInPrompt = inPrompt;
            room -= added;
            if (inPrompt)
            {
                promptRoom -= added;
            }

            decoded.Add(slot);
        }
    }

    // Prompt positions that fit the pause allowed to others, by the measured cost of a prompt position.
    private int PrefillSlice()
    {
        double positions = _options.MaxPrefillPause.TotalMilliseconds / _backbone.Costs.PromptPositionMilliseconds;
        return (int)Math.Clamp(positions, _options.MinPrefillSlice, _backbone.Options.BatchSize);
    }

    private long FreeCells => _usableCells - _reservedCells - _cachedCells;

    // Before an answer's first prompt decode: the longest start of its prompt that another sequence's cache already
    // holds (its donor's prompt, or a kept prefix with the same tokens) is shared into its speaking row, not decoded.
    // False while a donor that has not decoded the shared positions yet is still on its way to them.
    private bool SettlePrefix(ActiveAnswer slot)
    {
        var answer = slot.Answer;
        LLamaSeqId source = default;
        int reuse = 0;
        CachedPrefix? entry = null;
        if (answer.PromptDonor is { } donor && _active.Find(s => s.Answer == donor) is { } giver)
        {
            if (donor.InPrompt)
            {
                // A paused donor may not get on for a while: the row then decodes its own prompt.
                if (!giver.Paused)
                {
                    return false;
                }
            }
            else
            {
                reuse = answer.DonorPositions;
                source = donor.Sequences[0];
            }
        }

        foreach (var cached in _cached)
        {
            int common = cached.CommonPrefix(answer.Request.Prompt, answer.ReusablePositions);
            if (common > reuse)
            {
                (reuse, source, entry) = (common, cached.Sequence, cached);
            }
        }

        slot.PrefixSettled = true;
        if (reuse == 0)
        {
            return true;
        }

        _backbone.CopySequence(source, answer.Sequences[0], 0, reuse);
        answer.SkipPrompt(reuse);
        slot.Used += reuse;
        if (entry is not null)
        {
            entry.LastUsed = ++_cacheClock;
            entry.Own(answer.Request.CacheOwner);
        }

        Interlocked.Add(ref _reusedPositions, reuse);
        return true;
    }

    // Preambles being decoded ahead give their cache cells up to an answer that needs them, keeping nothing: they are
    // there to save answers time, and an answer held for their cells would wait for them. True if any gave way.
    private bool GiveWayToAnswers()
    {
        var ahead = _active.Where(slot => slot.Answer.Request.KeepsPromptOnly).ToList();
        foreach (var slot in ahead)
        {
            Release(slot, new OperationCanceledException("The preamble decoded ahead gave way to an answer that needed its cache cells."), keepPrefix: false);
        }

        return ahead.Count > 0;
    }

    // Whether a kept prefix already holds the first `length` positions of `prompt`: it is then marked used (and owned by
    // `owner` too) instead of anything being decoded or kept again.
    private bool UseCovering(Prompt prompt, int length, object? owner)
    {
        if (_cached.Find(c => c.Length >= length && c.CommonPrefix(prompt, length) == length) is not { } covering)
        {
            return false;
        }

        covering.LastUsed = ++_cacheClock;
        covering.Own(owner);
        return true;
    }

    // An ending answer's preamble is kept on a side sequence for later prompts that start with it; a kept prefix it
    // extends is dropped (the new one serves every prompt the old one did), one that covers it is only marked used.
    private void KeepPrefix(ActiveAnswer slot)
    {
        var answer = slot.Answer;
        var prompt = answer.Request.Prompt;
        int length = Math.Min(prompt.PrefixLength, answer.DecodedPromptPositions);
        if (length < _options.MinCachedPrefix || length > _options.PromptCacheCells || _sideSequences == 0)
        {
            return;
        }

        var owner = answer.Request.CacheOwner;
        if (UseCovering(prompt, length, owner))
        {
            return;
        }

        // The new prefix serves whoever the shorter ones served.
        var owners = new List<object>();
        foreach (var shorter in _cached.Where(c => c.CommonPrefix(prompt, c.Length) == c.Length).ToList())
        {
            owners.AddRange(shorter.Owners);
            Evict(shorter);
        }

        while (_cached.Count > 0 && (_cachedCells + length > _options.PromptCacheCells || _freeSideSequences.Count == 0))
        {
            Evict(_cached.MinBy(c => c.LastUsed)!);
        }

        if (_freeSideSequences.Count == 0)
        {
            return;
        }

        var sequence = _freeSideSequences.Pop();
        _backbone.CopySequence(answer.Sequences[0], sequence, 0, length);
        var kept = new CachedPrefix(sequence, prompt.Streams, length) { LastUsed = ++_cacheClock };
        owners.ForEach(kept.Own);
        kept.Own(owner);
        _cached.Add(kept);
        Volatile.Write(ref _cachedCells, _cachedCells + length);
    }

    /// <summary>
    /// Frees the kept prefixes <paramref name="owner"/> used, unless another owner uses them too (it then no longer counts
    /// as theirs); a prefix no owner ever claimed stays. Runs between steps; the task gives how many were freed.
    /// </summary>
    public Task<int> ForgetCacheOwner(object owner) => RunBetweenStepsAsync(
        () =>
        {
            int freed = 0;
            foreach (var entry in _cached.Where(c => c.Owners.Remove(owner) && c.Owners.Count == 0).ToList())
            {
                Evict(entry);
                freed++;
            }

            return freed;
        },
        CancellationToken.None);

    private void Evict(CachedPrefix entry)
    {
        _cached.Remove(entry);
        Volatile.Write(ref _cachedCells, _cachedCells - entry.Length);
        _backbone.RemoveSequence(entry.Sequence);
        _freeSideSequences.Push(entry.Sequence);
    }

    // Frees kept prefixes, least recently used first, until <paramref name="cells"/> are free; false if they cannot be.
    private bool MakeRoom(long cells)
    {
        while (FreeCells < cells && _cached.Count > 0)
        {
            Evict(_cached.MinBy(c => c.LastUsed)!);
        }

        return FreeCells >= cells;
    }

    // Makes sure the answer's reservation covers its next rows, growing it by a slice when it does not; false when the cache has no room.
    private bool Reserve(ActiveAnswer slot, int rows)
    {
        long needed = slot.Used + rows - slot.Reserved;
        if (needed <= 0)
        {
            return true;
        }

        var request = slot.Answer.Request;
        long slice = Math.Min(Math.Max(needed, (long)_options.ReserveSliceSteps * request.SequenceCount), request.CacheCells - slot.Reserved);
        MakeRoom(needed);
        long grow = FreeCells >= slice ? slice : needed;
        if (grow < needed || FreeCells < grow)
        {
            return false;
        }

        slot.Reserved += grow;
        _reservedCells += grow;
        return true;
    }

    // Every active answer waits for cells the others hold: the one admitted last ends, so the others can go on.
    private void EndYoungestIfAllPaused()
    {
        if (_active.Count > 0 && _active.All(slot => slot.Paused))
        {
            var youngest = _active.MaxBy(slot => slot.Order)!;
            _logger.LogWarning("The cache ({Cells} positions) is full: an answer ends after {Steps} steps to let {Others} other(s) go on.", _usableCells, youngest.Used, _active.Count - 1);
            Interlocked.Increment(ref _contextEnds);
            Release(youngest, error: null, AnswerStopReason.Context);
        }
    }

    private void RecordStep(ActiveAnswer slot, long now)
    {
        if (slot.LastStep != 0)
        {
            long gap = Stopwatch.GetElapsedTime(slot.LastStep, now).Ticks;
            long longest;
            while (gap > (longest = Volatile.Read(ref _longestGapTicks)) && Interlocked.CompareExchange(ref _longestGapTicks, gap, longest) != longest)
            {
            }
        }

        slot.LastStep = now;
    }

    private void RunQueuedWork()
    {
        if (_work.Count == 0)
        {
            return;
        }

        long started = Stopwatch.GetTimestamp();
        int count = 0;
        while (_work.TryDequeue(out var work))
        {
            work.Run();
            count++;
        }

        Interlocked.Add(ref _workTicks, Stopwatch.GetElapsedTime(started).Ticks);
        Interlocked.Add(ref _workItems, count);
    }

    // Anything unexpected on the thread: nothing more can be trusted to run, so every answer and request gets the error.
    private void Fault(Exception error)
    {
        _logger.LogCritical(error, "The decode loop failed; the engine refuses further requests.");
        _fault = error;
        _inbox.Writer.TryComplete();
        var failure = Faulted(error);
        foreach (var slot in _active.ToList())
        {
            try
            {
                Release(slot, failure);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "Freeing an answer of the failed decode loop failed.");
            }
        }

        FailQueued(failure);
    }

    // What arrived or was posted but never ran. Called again after the thread ended, for anything posted between its
    // last look at the inbox and the inbox closing.
    private void FailQueued(Exception error)
    {
        ReadInbox();
        while (_waiting.TryDequeue(out var waiting))
        {
            waiting.Fail(error);
        }

        while (_waitingSide.TryDequeue(out var waiting))
        {
            waiting.Fail(error);
        }

        while (_work.TryDequeue(out var work))
        {
            work.Fail(error);
        }
    }

    private void ReadInbox()
    {
        while (_inbox.Reader.TryRead(out var item))
        {
            if (item is AnswerSequence arrival)
            {
                (arrival.YieldsToAnswers ? _waitingSide : _waiting).Enqueue(arrival);
            }
            else if (item is BetweenStepsWork work)
            {
                _work.Enqueue(work);
            }

            // Anything else is a wake-up (Wake): reading it was its job.
        }
    }

    private void Record(BackboneBatch batch, bool stepsOnly, long started, long decodeStarted, long decodedAt, long headsTicks)
    {
        long now = Stopwatch.GetTimestamp();
        Interlocked.Add(ref _decodeTicks, Stopwatch.GetElapsedTime(decodeStarted, decodedAt).Ticks);
        // Steps alone (no prompt in the batch) are what an answer's pace is made of.
        if (stepsOnly)
        {
            Interlocked.Add(ref _stepTicks, Stopwatch.GetElapsedTime(started, now).Ticks);
            Interlocked.Add(ref _stepDecodeTicks, Stopwatch.GetElapsedTime(decodeStarted, decodedAt).Ticks - headsTicks);
            Interlocked.Add(ref _stepHeadsTicks, headsTicks);
            Interlocked.Add(ref _stepMixTicks, Stopwatch.GetElapsedTime(started, decodeStarted).Ticks);
            Interlocked.Add(ref _stepSampleTicks, Stopwatch.GetElapsedTime(decodedAt, now).Ticks);
        }
    }

    // Blocks only while there is nothing to decode or run; false once disposed. While idle, the decode costs are
    // measured one size at a time (here, on the thread that decodes: see the remarks), so that no request waits for
    // more than one measurement; until they all are, steps go in one decode.
    private bool WaitForWork()
    {
        while (!_stopping && _active.Count == 0 && _waiting.Count == 0 && _waitingSide.Count == 0 && !_inbox.Reader.TryPeek(out _) && _measuringCosts)
        {
            // The measurement decodes a short prompt on the scratch sequence: kept prefixes leave room for it.
            MakeRoom(MeasuringCells);
            _measuringCosts = _backbone.MeasureNextCost();
            if (!_measuringCosts)
            {
                _logger.LogDebug("Decode costs: {Costs}.", _backbone.Costs);
            }
        }

        if (_stopping)
        {
            return false;
        }

        // Answers waiting for streamed text, or held for their codec, give the loop nothing to do until their text, their
        // codec's work (or a cancellation) wakes it.
        if (_active.Any(slot => !slot.Answer.WaitsForText && !slot.Answer.HeldForSpeech) || (_waiting.Count > 0 && _active.Count < MaxActiveAnswers) || _waitingSide.Count > 0)
        {
            return true;
        }

        return _inbox.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult() && !_stopping;
    }

    private void DropCancelled()
    {
        foreach (var slot in _active.Where(s => s.Answer.Cancellation.IsCancellationRequested).ToList())
        {
            Release(slot, new OperationCanceledException(slot.Answer.Cancellation));
        }

        foreach (var queue in new[] { _waiting, _waitingSide })
        {
            int waiting = queue.Count;
            for (int i = 0; i < waiting; i++)
            {
                var answer = queue.Dequeue();
                if (answer.Cancellation.IsCancellationRequested)
                {
                    answer.Fail(new OperationCanceledException(answer.Cancellation));
                }
                else
                {
                    queue.Enqueue(answer);
                }
            }
        }
    }

    // In arrival order: a large answer at the head is not overtaken, so it cannot starve. Nothing is admitted while an
    // active answer waits for cache cells: they go to it first.
    private void Admit()
    {
        while (_waiting.TryPeek(out var next)
            && _active.Count(slot => !slot.Answer.YieldsToAnswers) < MaxActiveAnswers
            && _freeSequences.Count >= next.Request.SequenceCount
            && !_active.Any(slot => slot.Paused))
        {
            long first = FirstReservation(next.Request);
            if (first > FreeCells && !MakeRoom(first) && !(GiveWayToAnswers() && FreeCells >= first))
            {
                break;
            }

            _waiting.Dequeue();
            next.Sequences = [.. Enumerable.Range(0, next.Request.SequenceCount).Select(_ => _freeSequences.Pop())];
            _reservedCells += first;
            _active.Add(new ActiveAnswer(next, _admitted++) { Reserved = first });
        }

        // Rows that yield to answers: only while no answer waits, each on a side sequence (a kept prefix gives its own up).
        while (_waiting.Count == 0
            && _waitingSide.TryPeek(out var side)
            && _active.Count(slot => slot.Answer.YieldsToAnswers) < MaxActiveAnswers
            && !_active.Any(slot => slot.Paused))
        {
            if (_freeSideSequences.Count == 0)
            {
                if (_cached.Count == 0)
                {
                    break;
                }

                Evict(_cached.MinBy(c => c.LastUsed)!);
            }

            long first = FirstReservation(side.Request);
            if (first > FreeCells && !MakeRoom(first))
            {
                break;
            }

            _waitingSide.Dequeue();
            side.Sequences = [_freeSideSequences.Pop()];
            _reservedCells += first;
            _active.Add(new ActiveAnswer(side, _admitted++) { Reserved = first });
        }
    }

    private long FirstReservation(GenerationRequest request) =>
        Math.Min(request.Prompt.Length + (long)_options.ReserveSliceSteps * request.SequenceCount, request.CacheCells);

    private void Release(ActiveAnswer slot, Exception? error, AnswerStopReason? reason = null, bool keepPrefix = true)
    {
        if (!_active.Remove(slot))
        {
            return;
        }

        Exception? freeing = null;
        // A prefix the answer decoded whole stays for later prompts; after a failed decode the cache may hold part of a batch.
        if (keepPrefix && _options.PromptCacheCells > 0 && (error is null or OperationCanceledException) && slot.Answer.Sequences.Length > 0)
        {
            try
            {
                KeepPrefix(slot);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "Keeping the prefix of sequence {Sequence} failed.", slot.Answer.Sequences[0].Value);
                freeing = e;
            }
        }

        foreach (var sequence in slot.Answer.Sequences)
        {
            try
            {
                _backbone.RemoveSequence(sequence);
                (slot.Answer.YieldsToAnswers ? _freeSideSequences : _freeSequences).Push(sequence);
            }
            catch (Exception e)
            {
                // The sequence's cells may still hold this answer: it is never handed out again.
                _logger.LogError(e, "Freeing the cache of sequence {Sequence} failed.", sequence.Value);
                freeing ??= e;
            }
        }

        _reservedCells -= slot.Reserved;
        if (error is null)
        {
            slot.Answer.Complete(reason);
        }
        else
        {
            slot.Answer.Fail(error);
        }

        if (freeing is not null)
        {
            // The cache can no longer be trusted to be what the scheduler thinks it is.
            throw new InvalidOperationException($"The KV cache could not be freed ({freeing.Message}).", freeing);
        }
    }

    /// <summary>An admitted answer and its share of the cache.</summary>
    private sealed class ActiveAnswer(AnswerSequence answer, long order)
    {
        public AnswerSequence Answer { get; } = answer;

        /// <summary>Admission order: the deadlock breaker ends the youngest.</summary>
        public long Order { get; } = order;

        /// <summary>Cache cells reserved for the answer.</summary>
        public long Reserved { get; set; }

        /// <summary>Cache cells its decoded positions fill.</summary>
        public long Used { get; set; }

        /// <summary>Rows it has in the batch being decoded.</summary>
        public int Pending { get; set; }

        /// <summary>Whether its rows in the batch being decoded are prompt positions.</summary>
        public bool WasInPrompt { get; set; }

        /// <summary>Whether it could not reserve cells for its last step.</summary>
        public bool Paused { get; set; }

        /// <summary>When its last step was decoded (a timestamp), or 0.</summary>
        public long LastStep { get; set; }

        /// <summary>Whether the start of its prompt has been looked up in the other sequences' caches.</summary>
        public bool PrefixSettled { get; set; }
    }

    /// <summary>A kept preamble: its positions on a side sequence, and the tokens that produced them.</summary>
    private sealed class CachedPrefix(LLamaSeqId sequence, int[][] streams, int length)
    {
        private readonly int[][] _streams = [.. streams.Select(stream => stream[..length])];

        public LLamaSeqId Sequence { get; } = sequence;

        /// <summary>Positions (and cache cells) kept.</summary>
        public int Length { get; } = length;

        /// <summary>When it was last kept or shared (the scheduler's counter): the least recent goes first.</summary>
        public long LastUsed { get; set; }

        /// <summary>Who kept or shared it (realtime sessions); empty for prefixes of requests without an owner.</summary>
        public HashSet<object> Owners { get; } = new(ReferenceEqualityComparer.Instance);

        /// <summary>Counts <paramref name="owner"/> among its owners (null: nothing).</summary>
        public void Own(object? owner)
        {
            if (owner is not null)
            {
                Owners.Add(owner);
            }
        }

        /// <summary>How many leading positions of <paramref name="prompt"/>, at most <paramref name="limit"/>, have this prefix's tokens on every stream.</summary>
        public int CommonPrefix(Prompt prompt, int limit)
        {
            int end = Math.Min(Math.Min(limit, Length), prompt.Length);
            for (int position = 0; position < end; position++)
            {
                for (int stream = 0; stream < _streams.Length; stream++)
                {
                    if (_streams[stream][position] != prompt.Streams[stream][position])
                    {
                        return position;
                    }
                }
            }

            return Math.Max(0, end);
        }
    }
}

/// <summary>Work queued to run on the scheduler's thread between decodes.</summary>
internal abstract class BetweenStepsWork
{
    public abstract void Run();

    public abstract void Fail(Exception error);
}

/// <summary>Work with a result, handed back through a task whose continuations never run on the scheduler's thread.</summary>
internal sealed class BetweenStepsWork<T>(Func<T> work, CancellationToken cancellationToken) : BetweenStepsWork
{
    private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<T> Result => _result.Task;

    public override void Run()
    {
        if (cancellationToken.IsCancellationRequested)
        {
            _result.TrySetCanceled(cancellationToken);
            return;
        }

        try
        {
            _result.TrySetResult(work());
        }
        catch (Exception e)
        {
            _result.TrySetException(e);
        }
    }

    public override void Fail(Exception error) => _result.TrySetException(error);
}

/// <summary>Counters of a <see cref="DecodeScheduler"/>.</summary>
/// <param name="Decodes">Steps of the loop that decoded (each one or more llama.cpp decodes).</param>
/// <param name="StepDecodes">Those that held only steps (no prompt positions).</param>
/// <param name="Rows">Positions decoded.</param>
/// <param name="DecodeTime">Time spent in the backbone (llama.cpp and the heads).</param>
/// <param name="StepTime">Time of the step-only turns: the embedding mix, the decodes, the heads, sampling and rules (not the work between steps).</param>
/// <param name="StepDecodeTime">llama.cpp's share of <paramref name="StepTime"/>.</param>
/// <param name="StepHeadsTime">The output heads' share of <paramref name="StepTime"/>.</param>
/// <param name="StepMixTime">The share of <paramref name="StepTime"/> spent building the batch (the embedding mix).</param>
/// <param name="StepSampleTime">The share of <paramref name="StepTime"/> spent sampling and applying the rules.</param>
/// <param name="WorkTime">Time of the work run between steps (the speech decoder's chunks).</param>
/// <param name="WorkItems">Pieces of work run between steps.</param>
/// <param name="Pauses">Times an answer waited a step for cache cells.</param>
/// <param name="ContextEnds">Answers ended because the cache was full.</param>
internal readonly record struct DecodeStatistics(
    long Decodes, long StepDecodes, long Rows, TimeSpan DecodeTime, TimeSpan StepTime, TimeSpan StepDecodeTime, TimeSpan StepHeadsTime, TimeSpan StepMixTime,
    TimeSpan StepSampleTime, TimeSpan WorkTime, long WorkItems, long Pauses, long ContextEnds)
{
    /// <summary>The counters accumulated since <paramref name="earlier"/>.</summary>
    public DecodeStatistics Since(DecodeStatistics earlier) => new(
        Decodes - earlier.Decodes, StepDecodes - earlier.StepDecodes, Rows - earlier.Rows, DecodeTime - earlier.DecodeTime, StepTime - earlier.StepTime,
        StepDecodeTime - earlier.StepDecodeTime, StepHeadsTime - earlier.StepHeadsTime, StepMixTime - earlier.StepMixTime, StepSampleTime - earlier.StepSampleTime,
        WorkTime - earlier.WorkTime, WorkItems - earlier.WorkItems, Pauses - earlier.Pauses, ContextEnds - earlier.ContextEnds);
}
