using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Server.Api;

/// <summary>A request the API refuses, with the status, the field (OpenAI's <c>param</c>) and a code that name the problem.</summary>
public sealed class ApiRequestException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    /// <summary>The HTTP status: 400 for what is wrong, 413 for what is too long.</summary>
    public int Status { get; } = status;

    /// <summary>The request field at fault, if one is.</summary>
    public string? Param { get; } = param;

    /// <summary>A machine-readable code.</summary>
    public string? Code { get; } = code;

    /// <summary>A field that is invalid (400).</summary>
    public static ApiRequestException Invalid(string message, string? param = null, string code = "invalid_value") => new(StatusCodes.Status400BadRequest, message, param, code);

    /// <summary>Something over a limit (413).</summary>
    public static ApiRequestException TooLarge(string message, string? param = null, string code = "request_too_large") => new(StatusCodes.Status413PayloadTooLarge, message, param, code);
}

/// <summary>What a failed request is told: an exception as OpenAI's status and error body.</summary>
internal readonly record struct ApiError(int Status, string Message, string Type, string? Param, string? Code)
{
    public ErrorBody Body => new(new ErrorWire(Message, Type, Param, Code));

    /// <summary>The error for <paramref name="exception"/>: the request's problem named, never an internal detail for a server fault.</summary>
    public static ApiError From(Exception exception) => exception switch
    {
        ApiRequestException e => new(e.Status, e.Message, e.Status == 413 ? "invalid_request_error" : "invalid_request_error", e.Param, e.Code),
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } e =>
            new(413, $"The request body is too large: {e.Message}", "invalid_request_error", null, "request_too_large"),
        BadHttpRequestException e => new(e.StatusCode, $"The request could not be read: {e.Message}", "invalid_request_error", null, "bad_request"),
        AudioFormatException { Problem: AudioInputProblem.TooLong } e => new(413, e.Message, "invalid_request_error", null, "audio_too_long"),
        AudioFormatException e => new(400, e.Message, "invalid_request_error", null, "invalid_audio"),
        ContextOverflowException e => new(400, e.Message, "invalid_request_error", "messages", "context_length_exceeded"),
        JsonException e => new(400, $"The request body is not valid JSON for this endpoint: {e.Message}", "invalid_request_error", e.Path, "invalid_json"),
        MiniOmniThinkerException e => new(502, e.Message, "server_error", null, "thinker_failed"),
        ModelNotReadyException e => new(503, e.Message, "server_error", null, "model_not_ready"),
        ArgumentException e => new(400, e.Message, "invalid_request_error", null, "invalid_request"),
        NotSupportedException e => new(400, e.Message, "invalid_request_error", null, "unsupported"),
        _ => new(500, "The server failed to answer; its log has the details.", "server_error", null, "internal_error"),
    };

    /// <summary>Writes the error as the response, with Retry-After where waiting helps.</summary>
    public async Task WriteAsync(HttpContext context, int retryAfterSeconds)
    {
        context.Response.StatusCode = Status;
        if (Status is 429 or 503)
        {
            context.Response.Headers.RetryAfter = retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await context.Response.WriteAsJsonAsync(Body, ServerJsonContext.Default.ErrorBody, contentType: "application/json", context.RequestAborted).ConfigureAwait(false);
    }
}

/// <summary>The API's exception handler: every exception that escapes an endpoint becomes OpenAI's error body with the right status.</summary>
internal sealed class ApiExceptionHandler(IOptions<MiniOmniServerOptions> options, ILogger<ApiExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && httpContext.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is nobody to tell.
            return true;
        }

        var error = ApiError.From(exception);
        if (error.Status >= 500 && exception is not ModelNotReadyException)
        {
            logger.LogError(exception, "{Method} {Path} failed.", httpContext.Request.Method, httpContext.Request.Path);
        }
        else
        {
            logger.LogInformation("{Method} {Path}: {Status} {Message}", httpContext.Request.Method, httpContext.Request.Path, error.Status, error.Message);
        }

        if (httpContext.Response.HasStarted)
        {
            return true;
        }

        await error.WriteAsync(httpContext, options.Value.Limits.RetryAfterSeconds).ConfigureAwait(false);
        return true;
    }
}
