using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.Engine;

/// <summary>
/// Continuous batching over one backbone: every active answer's rows go into one llama.cpp decode per step, new answers
/// join between steps (their prompts fill the batch beside the others' steps), and answers that end or are cancelled
/// leave and free their cache at once. Answers beyond <see cref="MaxActiveAnswers"/>, or that would overfill the cache,
/// wait in arrival order.
/// </summary>
/// <remarks>
/// One thread owns the backbone, so llama.cpp is never entered concurrently; callers only exchange answers and steps
/// with it through channels. The same thread runs the answers' other frequent compute (<see cref="RunBetweenStepsAsync"/>,
/// the speech decoder) between decodes: on the CPU backend every stage runs on OpenMP, which keeps a team of worker
/// threads per calling thread, and once a process has more of them than cores libgomp stops spinning at barriers, so
/// every op of every graph, the backbone's included, waits on a futex wake-up. One calling thread keeps one team, and
/// stages taking turns on the cores is also what a small CPU does best.
/// </remarks>
internal sealed class DecodeScheduler : IDisposable
{
    private readonly IBackbone _backbone;
    private readonly EmbeddingMix _mix;
    private readonly MiniOmniVocabulary _vocabulary;
    private readonly ILogger _logger;
    // New answers and work to run between steps, in the order they were posted.
    private readonly Channel<object> _inbox = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Queue<AnswerSequence> _waiting = new();
    private readonly Queue<BetweenStepsWork> _work = new();
    private readonly List<AnswerSequence> _active = [];
    private readonly Stack<LLamaSeqId> _freeSequences;
    private readonly Thread _thread;
    private volatile bool _stopping;
    private int _reservedCells;
    private long _decodes, _stepDecodes, _rows, _decodeTicks, _stepTicks, _stepDecodeTicks;

    public DecodeScheduler(IBackbone backbone, EmbeddingMix mix, MiniOmniVocabulary vocabulary, int maxActiveAnswers, ILogger logger)
    {
        int sequences = (int)backbone.Options.MaxSequences;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxActiveAnswers);
        if (sequences < 2 || backbone.Options.BatchSize < 2 * maxActiveAnswers + 1)
        {
            throw new ArgumentException(
                $"The backbone needs at least 2 sequences (it has {sequences}) and room in a batch for every answer's step ({backbone.Options.BatchSize} positions for {maxActiveAnswers} answers).",
                nameof(backbone));
        }

        _backbone = backbone;
        _mix = mix;
        _vocabulary = vocabulary;
        _logger = logger;
        MaxActiveAnswers = maxActiveAnswers;
        _freeSequences = new Stack<LLamaSeqId>(Enumerable.Range(0, sequences).Reverse().Select(id => (LLamaSeqId)id));
        _thread = new Thread(Run) { IsBackground = true, Name = "MiniOmni decode scheduler" };
        _thread.Start();
    }

    /// <summary>The most answers decoded together; later ones wait.</summary>
    public int MaxActiveAnswers { get; }

    /// <summary>What the scheduler has done so far, for benchmarks and diagnostics.</summary>
    public DecodeStatistics Statistics => new(Volatile.Read(ref _decodes), Volatile.Read(ref _stepDecodes), Volatile.Read(ref _rows),
        TimeSpan.FromTicks(Volatile.Read(ref _decodeTicks)), TimeSpan.FromTicks(Volatile.Read(ref _stepTicks)), TimeSpan.FromTicks(Volatile.Read(ref _stepDecodeTicks)));

    /// <summary>Queues an answer; its steps arrive on the returned reader as they are kept.</summary>
    /// <exception cref="ArgumentException">The answer could never fit the cache.</exception>
    public ChannelReader<StepTokens> Submit(GenerationRequest request, CancellationToken cancellationToken)
    {
        if (request.CacheCells > _backbone.Options.ContextSize)
        {
            throw new ArgumentException(
                $"The answer needs {request.CacheCells} cache positions (prompt {request.Prompt.Length}, {request.MaxSteps} steps, {request.SequenceCount} sequence(s)); the cache holds {_backbone.Options.ContextSize}.",
                nameof(request));
        }

        var answer = new AnswerSequence(request, _mix, _vocabulary, cancellationToken);
        Post(answer);
        return answer.Steps;
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
        if (_inbox.Writer.TryComplete())
        {
            _thread.Join();
            FailQueued();
        }
    }

    private void Post(object item)
    {
        if (!_inbox.Writer.TryWrite(item))
        {
            throw new ObjectDisposedException(nameof(DecodeScheduler));
        }
    }

    private void Run()
    {
        var batch = new BackboneBatch(_backbone.EmbeddingLength);
        var decoded = new List<AnswerSequence>();
        while (WaitForWork())
        {
            ReadInbox();
            while (_work.TryDequeue(out var work))
            {
                work.Run();
            }

            DropCancelled();
            Admit();
            if (_active.Count == 0)
            {
                continue;
            }

            // Steps first: each active answer's step costs one row per sequence, and prompts take the room left.
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            batch.Clear();
            decoded.Clear();
            int room = (int)_backbone.Options.BatchSize;
            foreach (var answer in _active.Where(a => !a.InPrompt).Concat(_active.Where(a => a.InPrompt)))
            {
                if (room > 0)
                {
                    room -= answer.AddRows(batch, room);
                    decoded.Add(answer);
                }
            }

            long decodeStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                _backbone.Decode(batch);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "A decode of {Rows} positions for {Answers} answer(s) failed.", batch.EmbeddingsCount, decoded.Count);
                foreach (var answer in decoded)
                {
                    Release(answer, e);
                }

                continue;
            }

            long decodedAt = System.Diagnostics.Stopwatch.GetTimestamp();
            foreach (var answer in decoded)
            {
                bool goesOn;
                try
                {
                    goesOn = answer.OnDecoded(_backbone);
                }
                catch (Exception e)
                {
                    Release(answer, e);
                    continue;
                }

                if (!goesOn)
                {
                    Release(answer, error: null);
                }
            }

            Record(batch, decoded, started, decodeStarted, decodedAt);
        }

        var stopped = new ObjectDisposedException(nameof(DecodeScheduler), "The engine was disposed before the answer ended.");
        foreach (var answer in _active.ToList())
        {
            Release(answer, stopped);
        }

        FailQueued();
    }

    // Once stopped: what arrived or was posted but never ran. Called again after the thread ended, for anything posted
    // between its last look at the inbox and the inbox closing.
    private void FailQueued()
    {
        var stopped = new ObjectDisposedException(nameof(DecodeScheduler), "The engine was disposed before the answer ended.");
        ReadInbox();
        while (_waiting.TryDequeue(out var waiting))
        {
            waiting.Fail(stopped);
        }

        while (_work.TryDequeue(out var work))
        {
            work.Fail(stopped);
        }
    }

    private void ReadInbox()
    {
        while (_inbox.Reader.TryRead(out var item))
        {
            if (item is AnswerSequence arrival)
            {
                _waiting.Enqueue(arrival);
            }
            else
            {
                _work.Enqueue((BetweenStepsWork)item);
            }
        }
    }

    private void Record(BackboneBatch batch, List<AnswerSequence> decoded, long started, long decodeStarted, long decodedAt)
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _decodes);
        Interlocked.Add(ref _rows, batch.EmbeddingsCount);
        Interlocked.Add(ref _decodeTicks, System.Diagnostics.Stopwatch.GetElapsedTime(decodeStarted, decodedAt).Ticks);
        // Steps alone (no prompt in the batch) are what an answer's pace is made of.
        if (batch.EmbeddingsCount <= 2 * decoded.Count)
        {
            Interlocked.Increment(ref _stepDecodes);
            Interlocked.Add(ref _stepTicks, System.Diagnostics.Stopwatch.GetElapsedTime(started, now).Ticks);
            Interlocked.Add(ref _stepDecodeTicks, System.Diagnostics.Stopwatch.GetElapsedTime(decodeStarted, decodedAt).Ticks);
        }
    }

    // Blocks only while there is nothing to decode or run; false once disposed.
    private bool WaitForWork()
    {
        if (_stopping)
        {
            return false;
        }

        if (_active.Count > 0 || _waiting.Count > 0)
        {
            return true;
        }

        return _inbox.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult() && !_stopping;
    }

    private void DropCancelled()
    {
        foreach (var answer in _active.Where(a => a.Cancellation.IsCancellationRequested).ToList())
        {
            Release(answer, new OperationCanceledException(answer.Cancellation));
        }

        int waiting = _waiting.Count;
        for (int i = 0; i < waiting; i++)
        {
            var answer = _waiting.Dequeue();
            if (answer.Cancellation.IsCancellationRequested)
            {
                answer.Fail(new OperationCanceledException(answer.Cancellation));
            }
            else
            {
                _waiting.Enqueue(answer);
            }
        }
    }

    // In arrival order: a large answer at the head is not overtaken, so it cannot starve.
    private void Admit()
    {
        while (_waiting.TryPeek(out var next)
            && _active.Count < MaxActiveAnswers
            && _freeSequences.Count >= next.Request.SequenceCount
            && _reservedCells + next.Request.CacheCells <= _backbone.Options.ContextSize)
        {
            _waiting.Dequeue();
            next.Sequences = [.. Enumerable.Range(0, next.Request.SequenceCount).Select(_ => _freeSequences.Pop())];
            _reservedCells += next.Request.CacheCells;
            _active.Add(next);
        }
    }

    private void Release(AnswerSequence answer, Exception? error)
    {
        if (!_active.Remove(answer))
        {
            return;
        }

        foreach (var sequence in answer.Sequences)
        {
            try
            {
                _backbone.RemoveSequence(sequence);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "Freeing the cache of sequence {Sequence} failed.", sequence.Value);
            }

            _freeSequences.Push(sequence);
        }

        _reservedCells -= answer.Request.CacheCells;
        if (error is null)
        {
            answer.Complete();
        }
        else
        {
            answer.Fail(error);
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
/// <param name="Decodes">Backbone decodes run.</param>
/// <param name="StepDecodes">Decodes that held only steps (no prompt positions).</param>
/// <param name="Rows">Positions decoded.</param>
/// <param name="DecodeTime">Time spent in the backbone's decode.</param>
/// <param name="StepTime">Time of the step-only decodes, with the embedding mix, sampling and rules around them.</param>
/// <param name="StepDecodeTime">The backbone's share of <paramref name="StepTime"/>.</param>
internal readonly record struct DecodeStatistics(long Decodes, long StepDecodes, long Rows, TimeSpan DecodeTime, TimeSpan StepTime, TimeSpan StepDecodeTime)
{
    /// <summary>The counters accumulated since <paramref name="earlier"/>.</summary>
    public DecodeStatistics Since(DecodeStatistics earlier) =>
        new(Decodes - earlier.Decodes, StepDecodes - earlier.StepDecodes, Rows - earlier.Rows, DecodeTime - earlier.DecodeTime, StepTime - earlier.StepTime, StepDecodeTime - earlier.StepDecodeTime);
}
