using Microsoft.Extensions.Logging;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>
/// A Hugging Face access token and where it came from. Its <see cref="ToString"/> names only the source, so a token
/// never reaches a log line or an error message by accident.
/// </summary>
internal sealed class HubToken
{
    /// <summary>A token file bigger than this is not a token; it is ignored with a warning rather than read whole.</summary>
    private const long MaxTokenFileBytes = 64 * 1024;

    private HubToken(string value, string source)
    {
        Value = value;
        Source = source;
    }

    /// <summary>The token itself: for the Authorization header only.</summary>
    public string Value { get; }

    /// <summary>Where it came from, for messages: <c>HF_TOKEN</c>, <c>the token file /home/x/.cache/huggingface/token</c>...</summary>
    public string Source { get; }

    public override string ToString() => $"the token from {Source}";

    /// <summary>
    /// The token to send, looked up as huggingface_hub's <c>get_token</c> does: the explicit one; else (unless
    /// <c>HF_HUB_DISABLE_IMPLICIT_TOKEN</c>) <c>HF_TOKEN</c>, else <c>HUGGING_FACE_HUB_TOKEN</c>, else the token file
    /// <c>HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>, else <c>$XDG_CACHE_HOME/huggingface/token</c> or
    /// <c>~/.cache/huggingface/token</c>. Each is cleaned of line breaks and surrounding blanks; one left empty counts as unset.
    /// </summary>
    /// <param name="explicitToken">The token the application set, if any.</param>
    /// <param name="variable">Reads an environment variable (null when unset or empty).</param>
    /// <param name="logger">Told which source was used (never the token).</param>
    public static HubToken? Find(string? explicitToken, Func<string, string?> variable, ILogger logger)
    {
        if (explicitToken is not null)
        {
            return Clean(explicitToken) is { } token ? new HubToken(token, "ModelStoreOptions.Token") : null;
        }

        if (ModelStoreOptions.IsTrue(variable("HF_HUB_DISABLE_IMPLICIT_TOKEN")))
        {
            logger.LogDebug("HF_HUB_DISABLE_IMPLICIT_TOKEN is set: no token from the environment or the token file is sent.");
            return null;
        }

        // As huggingface_hub: the first variable that is set is taken, and one that cleans to nothing falls through to the file.
        string? environmentName = variable("HF_TOKEN") is not null ? "HF_TOKEN" : variable("HUGGING_FACE_HUB_TOKEN") is not null ? "HUGGING_FACE_HUB_TOKEN" : null;
        if (environmentName is not null && Clean(variable(environmentName)!) is { } fromEnvironment)
        {
            logger.LogDebug("Using the Hugging Face token from {Variable}.", environmentName);
            return new HubToken(fromEnvironment, environmentName);
        }

        string path = HuggingFacePaths.TokenFile(variable);
        string? fromFile = ReadTokenFile(path, logger);
        if (fromFile is not null)
        {
            logger.LogDebug("Using the Hugging Face token from the token file {Path}.", path);
            return new HubToken(fromFile, $"the token file {path}");
        }

        return null;
    }

    /// <summary>Removes what huggingface_hub removes: every CR and LF, then blanks at either end; null when nothing is left.</summary>
    public static string? Clean(string token)
    {
        string cleaned = token.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Trim();
        return cleaned.Length == 0 ? null : cleaned;
    }

    private static string? ReadTokenFile(string path, ILogger logger)
    {
        try
        {
            var file = new FileInfo(path);
            if (!file.Exists)
            {
                return null;
            }

            if (file.Length > MaxTokenFileBytes)
            {
                logger.LogWarning("The Hugging Face token file {Path} holds {Bytes} bytes, too many for a token; it is ignored.", path, file.Length);
                return null;
            }

            return Clean(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Public models need no token, so an unreadable file is worth a warning, not a failure.
            logger.LogWarning("The Hugging Face token file {Path} could not be read ({Reason}); no token is sent.", path, e.Message);
            return null;
        }
    }
}
