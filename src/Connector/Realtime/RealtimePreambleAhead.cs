using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// Decodes a realtime session's next preamble (its instructions and the conversation so far) into the engine's prompt
/// cache whenever the conversation changes between answers: after an answer, a transcript, an item added, cut or deleted.
/// The next turn starts with that preamble, so it decodes only its own question, and the history is decoded while the
/// user is still speaking rather than after. One decode at a time; changes that come during one are taken by the next.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimePreambleAhead(RealtimeSessionContext session)
{
    private readonly Lock _lock = new();
    private Task _running = Task.CompletedTask;
    private bool _active;
    private bool _again;
    private string? _kept;
    private CancellationTokenSource? _decoding;

    /// <summary>Completes once no decode ahead is under way.</summary>
    public Task Idle
    {
        get
        {
            lock (_lock)
            {
                return _running;
            }
        }
    }

    /// <summary>The conversation may have changed: decodes its preamble ahead, unless that is what the cache holds already.</summary>
    public void Refresh()
    {
        // A thinker's answers are read aloud from its text, and a transcription session never answers: neither has a preamble to get ahead with.
        if (!session.ClientOptions.PrefillHistoryAhead || session.Engine is not IPromptCacheOwners || session.ClientOptions.Thinker is not null
            || session.Settings.Transcribes || session.Lifetime.IsCancellationRequested)
        {
            return;
        }

        lock (_lock)
        {
            if (_active)
            {
                _again = true;
                return;
            }

            _active = true;
            _running = Task.Run(RunAsync, CancellationToken.None);
        }
    }

    /// <summary>
    /// A response is about to start: a decode ahead still under way stops (what it has decoded stays in the cache for the
    /// answer to share) and changes waiting for one are dropped; the response's end refreshes again.
    /// </summary>
    public void Stop()
    {
        lock (_lock)
        {
            _again = false;
            _decoding?.Cancel();
        }
    }

    private async Task RunAsync()
    {
        while (true)
        {
            try
            {
                await PrefillAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException && session.Lifetime.IsCancellationRequested)
            {
                // The session is closing.
            }
            catch (Exception e)
            {
                // Not an error of any request: the next answer decodes its preamble itself.
                session.Logger.LogDebug(e, "Realtime session {Session}: decoding the next preamble ahead failed.", session.IdPrefix);
            }

            lock (_lock)
            {
                if (!_again)
                {
                    _active = false;
                    return;
                }

                _again = false;
            }
        }
    }

    private async Task PrefillAsync()
    {
        var conversation = session.Conversation;
        // While an answer is generated its text is not final; its end refreshes again.
        if (conversation.HasAnswerInProgress)
        {
            return;
        }

        // The preamble a response with the session's own instructions and tools gives the next user turn.
        var options = session.Settings.Options;
        string? instructions;
        try
        {
            instructions = RealtimeToolOffer.From(options.Tools, options.ToolMode, "the session").SystemText(options.Instructions);
        }
        catch (RealtimeRequestException)
        {
            return;
        }

        string? preamble = conversation.RenderPreamble(instructions, question: null, session.ClientOptions.HistoryCharacterBudget);
        if (preamble is null || preamble == _kept)
        {
            return;
        }

        using var decoding = CancellationTokenSource.CreateLinkedTokenSource(session.Lifetime);
        lock (_lock)
        {
            _decoding = decoding;
        }

        try
        {
            session.Logger.LogDebug("Realtime session {Session}: decoding the next preamble ({Characters} characters) ahead.", session.IdPrefix, preamble.Length);
            await ((IPromptCacheOwners)session.Engine).PrefillPreambleAsync(preamble, session, decoding.Token).ConfigureAwait(false);
            _kept = preamble;
            session.Logger.LogDebug("Realtime session {Session}: the next preamble is in the cache.", session.IdPrefix);
        }
        catch (OperationCanceledException) when (decoding.IsCancellationRequested && !session.Lifetime.IsCancellationRequested)
        {
            // Stopped for an answer, which shares what was decoded.
        }
        finally
        {
            lock (_lock)
            {
                _decoding = null;
            }
        }
    }
}
