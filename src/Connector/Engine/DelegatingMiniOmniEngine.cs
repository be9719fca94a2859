using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Engine;

/// <summary>
/// An engine that passes everything on to an inner engine, for wrappers that change one thing (an answer budget, who
/// disposes the engine), as <c>DelegatingChatClient</c> does for chat clients. What the inner engine does ahead of the
/// requests of a realtime session (encoding a turn while its speaker pauses, decoding the next turn's preamble while they
/// speak, freeing what the session kept when it ends) passes through as well: a wrapper that implemented only
/// <see cref="IMiniOmniEngine"/> would silently put all of that back on the critical path.
/// </summary>
public abstract class DelegatingMiniOmniEngine : IMiniOmniEngine, IEncodeAhead, IPromptCacheOwners
{
    /// <summary>Wraps <paramref name="innerEngine"/>.</summary>
    protected DelegatingMiniOmniEngine(IMiniOmniEngine innerEngine)
    {
        InnerEngine = innerEngine ?? throw new ArgumentNullException(nameof(innerEngine));
    }

    /// <summary>The engine everything is passed on to.</summary>
    protected IMiniOmniEngine InnerEngine { get; }

    /// <inheritdoc />
    public virtual string ModelId => InnerEngine.ModelId;

    /// <inheritdoc />
    public virtual int MaxPositions => InnerEngine.MaxPositions;

    /// <inheritdoc />
    public virtual IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, CancellationToken cancellationToken = default) =>
        InnerEngine.GenerateAsync(request, cancellationToken);

    /// <inheritdoc />
    void IEncodeAhead.EncodeAhead(float[] audio, EncoderMode mode) => (InnerEngine as IEncodeAhead)?.EncodeAhead(audio, mode);

    /// <inheritdoc />
    Task<int> IPromptCacheOwners.ForgetAsync(object owner) =>
        InnerEngine is IPromptCacheOwners cache ? cache.ForgetAsync(owner) : Task.FromResult(0);

    /// <inheritdoc />
    Task IPromptCacheOwners.PrefillPreambleAsync(string preamble, object owner, CancellationToken cancellationToken) =>
        InnerEngine is IPromptCacheOwners cache ? cache.PrefillPreambleAsync(preamble, owner, cancellationToken) : Task.CompletedTask;
}
