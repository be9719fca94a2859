using System.Runtime.CompilerServices;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>A real engine behind a decorator that records every request it is asked, in order, and every answer it completes.</summary>
internal sealed class RecordingEngine(IMiniOmniEngine inner) : IMiniOmniEngine
{
    private readonly List<MiniOmniRequest> _requests = [];
    private readonly List<AnswerCompleted> _completed = [];

    public string ModelId => inner.ModelId;

    public int MaxPositions => inner.MaxPositions;

    public IReadOnlyList<MiniOmniRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    public IReadOnlyList<AnswerCompleted> Completed
    {
        get
        {
            lock (_requests)
            {
                return [.. _completed];
            }
        }
    }

    public async IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        lock (_requests)
        {
            _requests.Add(request);
        }

        await foreach (var item in inner.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (item is AnswerCompleted completed)
            {
                lock (_requests)
                {
                    _completed.Add(completed);
                }
            }

            yield return item;
        }
    }
}
