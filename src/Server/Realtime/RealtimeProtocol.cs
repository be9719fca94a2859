namespace MiniOmni.SK.Server.Realtime;

/// <summary>
/// Which version of OpenAI's Realtime events one connection speaks: the GA events, or the beta's for clients that ask
/// for it (the <c>OpenAI-Beta: realtime=v1</c> header or the <c>openai-beta.realtime-v1</c> subprotocol) or send the beta's
/// session shape. The beta renamed events and fields, and nothing else; the session is the same.
/// </summary>
internal sealed class RealtimeProtocol
{
    /// <summary>The subprotocol by which browsers, which cannot set headers, ask for the beta.</summary>
    public const string BetaSubprotocol = "openai-beta.realtime-v1";

    // GA name -> beta name, for the server events the beta named otherwise.
    private static readonly Dictionary<string, string> BetaNames = new(StringComparer.Ordinal)
    {
        ["response.output_audio.delta"] = "response.audio.delta",
        ["response.output_audio.done"] = "response.audio.done",
        ["response.output_audio_transcript.delta"] = "response.audio_transcript.delta",
        ["response.output_audio_transcript.done"] = "response.audio_transcript.done",
        ["response.output_text.delta"] = "response.text.delta",
        ["response.output_text.done"] = "response.text.done",
        ["conversation.item.added"] = "conversation.item.created",
    };

    /// <summary>Creates the protocol of a connection; <paramref name="beta"/>: the client asked for the beta when it connected.</summary>
    public RealtimeProtocol(bool beta) => Beta = beta;

    /// <summary>Whether the connection speaks the beta's events.</summary>
    public bool Beta { get; private set; }

    /// <summary>Whether a request to <paramref name="headers"/>' connection asks for the beta.</summary>
    public static bool AsksForBeta(IHeaderDictionary headers, IList<string> subprotocols) =>
        headers["OpenAI-Beta"].Any(value => value?.Contains("realtime=v1", StringComparison.OrdinalIgnoreCase) == true)
        || subprotocols.Contains(BetaSubprotocol, StringComparer.OrdinalIgnoreCase);

    /// <summary>The client sent the beta's shape: the connection speaks the beta from now on.</summary>
    public void SwitchToBeta() => Beta = true;

    /// <summary>The name of the server event <paramref name="gaType"/> in this connection's version; null when the beta has no such event.</summary>
    public string? Name(string gaType) =>
        !Beta ? gaType
        : gaType == "conversation.item.done" ? null
        : BetaNames.GetValueOrDefault(gaType, gaType);
}
