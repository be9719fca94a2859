using System.Net;

namespace MiniOmni.SK;

/// <summary>
/// The thinker (the chat client that writes the answers Mini-Omni speaks) could not be reached or failed: the message
/// names its endpoint, its model and the status it gave. The turn ends with this error; the session or client goes on.
/// </summary>
public sealed class MiniOmniThinkerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MiniOmniThinkerException(string message, string endpoint, int? statusCode, Exception? innerException = null)
        : base(message, innerException)
    {
        Endpoint = endpoint;
        StatusCode = statusCode;
    }

    /// <summary>The thinker's endpoint (its URI), or its provider's or type's name when it has none.</summary>
    public string Endpoint { get; }

    /// <summary>The HTTP status the thinker answered with; null when it gave none (unreachable, or not over HTTP).</summary>
    public int? StatusCode { get; }

    /// <summary>The error <paramref name="error"/> of a thinker, described by its endpoint, model and status.</summary>
    internal static MiniOmniThinkerException From(Exception error, Microsoft.Extensions.AI.ChatClientMetadata? metadata, string? model, string fallbackName)
    {
        if (error is MiniOmniThinkerException known)
        {
            return known;
        }

        string endpoint = metadata?.ProviderUri?.ToString() ?? metadata?.ProviderName ?? fallbackName;
        model ??= metadata?.DefaultModelId;
        int? status = null;
        HttpRequestException? http = null;
        for (var e = error; e is not null; e = e.InnerException)
        {
            http ??= e as HttpRequestException;
            // The OpenAI SDK's ClientResultException (System.ClientModel) carries the status as Status, 0 when there was no answer.
            if (status is null && e.GetType().GetProperty("Status")?.GetValue(e) is int code and > 0)
            {
                status = code;
            }
        }

        status ??= http?.StatusCode is { } httpStatus ? (int)httpStatus : null;
        string what = status is { } s
            ? $"it answered HTTP {s} ({(HttpStatusCode)s})"
            : http is not null ? $"it could not be reached ({http.Message})" : $"{error.GetType().Name}: {error.Message}";
        return new MiniOmniThinkerException(
            $"The thinker at {endpoint}{(model is null ? "" : $" (model {model})")} failed: {what}.",
            endpoint,
            status,
            error);
    }
}
