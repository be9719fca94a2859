using System.Runtime.CompilerServices;
using MiniOmni.SK.Engine;
using Moq;

namespace MiniOmni.SK.Connector.Tests.AI;

/// <summary>
/// A Moq <see cref="IMiniOmniEngine"/> that answers each request with the events a script gives for it, and records the
/// requests and whether their streams were cancelled.
/// </summary>
internal sealed class ScriptedEngine
{
    private readonly Func<MiniOmniRequest, IEnumerable<MiniOmniEvent>> _script;

    public ScriptedEngine(Func<MiniOmniRequest, IEnumerable<MiniOmniEvent>> script)
    {
        _script = script;
        Mock.SetupGet(e => e.ModelId).Returns("scripted");
        Mock.SetupGet(e => e.MaxPositions).Returns(2048);
        Mock.Setup(e => e.GenerateAsync(It.IsAny<MiniOmniRequest>(), It.IsAny<CancellationToken>()))
            .Returns((MiniOmniRequest request, CancellationToken token) => Play(request, token));
    }

    public ScriptedEngine(params MiniOmniEvent[] events)
        : this(_ => events)
    {
    }

    public Mock<IMiniOmniEngine> Mock { get; } = new(MockBehavior.Strict);

    public IMiniOmniEngine Object => Mock.Object;

    public List<MiniOmniRequest> Requests { get; } = [];

    public List<CancellationToken> Tokens { get; } = [];

    public MiniOmniRequest Request => Assert.Single(Requests);

    public static AnswerCompleted Completed(int steps = 3, AnswerStopReason stop = AnswerStopReason.EndOfAnswer) => new(10, steps, 0, null, TimeSpan.Zero, []) { StopReason = stop };

    /// <summary>A request's preamble written out, markers included (null when it has none).</summary>
    public static string? PreambleOf(MiniOmniRequest request) => request.PreambleSegments is { } segments ? PreambleSegment.Concat(segments) : request.Preamble;

    public static SpeechChunk SpeechOf(float value, int samples = 4) => new(Enumerable.Repeat(value, samples).ToArray(), 24000);

    private async IAsyncEnumerable<MiniOmniEvent> Play(MiniOmniRequest request, [EnumeratorCancellation] CancellationToken token)
    {
        lock (Requests)
        {
            Requests.Add(request);
            Tokens.Add(token);
        }

        foreach (var item in _script(request))
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return item;
        }
    }
}
