using System.Text.RegularExpressions;

namespace MiniOmni.SK.ModelFiles.Download;

/// <summary>Where huggingface_hub keeps its files, from the same variables and with the same defaults.</summary>
internal static partial class HuggingFacePaths
{
    /// <summary><c>HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>.</summary>
    public static string Home(Func<string, string?> variable) => Path.GetFullPath(variable("HF_HOME") is { } hfHome
        ? Expand(hfHome, variable)
        : Path.Combine(variable("XDG_CACHE_HOME") is { } xdg ? Expand(xdg, variable) : Path.Combine(ModelStoreOptions.HomeDirectory(variable), ".cache"), "huggingface"));

    /// <summary>The token of <c>hf auth login</c>: <c>HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>.</summary>
    public static string TokenFile(Func<string, string?> variable) =>
        Path.GetFullPath(variable("HF_TOKEN_PATH") is { } tokenPath ? Expand(tokenPath, variable) : Path.Combine(Home(variable), "token"));

    /// <summary>huggingface_hub's own download cache: <c>HF_HUB_CACHE</c>, else <c>HUGGINGFACE_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>.</summary>
    public static string HubCache(Func<string, string?> variable) =>
        Path.GetFullPath((variable("HF_HUB_CACHE") ?? variable("HUGGINGFACE_HUB_CACHE")) is { } hubCache ? Expand(hubCache, variable) : Path.Combine(Home(variable), "hub"));

    /// <summary><c>~</c> and <c>$NAME</c> or <c>${NAME}</c> expanded as Python's expanduser and expandvars do (unknown names stay).</summary>
    public static string Expand(string path, Func<string, string?> variable)
    {
        if (path == "~" || path.StartsWith("~/", StringComparison.Ordinal) || path.StartsWith("~\\", StringComparison.Ordinal))
        {
            path = ModelStoreOptions.HomeDirectory(variable) + path[1..];
        }

        return VariableReference().Replace(path, match =>
        {
            string name = match.Groups["braced"].Success ? match.Groups["braced"].Value : match.Groups["plain"].Value;
            return variable(name) ?? match.Value;
        });
    }

    [GeneratedRegex(@"\$(?:\{(?<braced>[^}]+)\}|(?<plain>[A-Za-z_][A-Za-z0-9_]*))")]
    private static partial Regex VariableReference();
}
