using System.Runtime.CompilerServices;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>A real engine behind a decorator that records every request it is asked, in order.</summary>
internal sealed class RecordingEngine(IMiniOmniEngine inner) : IMiniOmniEngine
{
    private readonly List<MiniOmniRequest> _requests = [];

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

    public async IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        lock (_requests)
        {
            _requests.Add(request);
        }

        await foreach (var item in inner.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            yield return item;
        }
    }
}
