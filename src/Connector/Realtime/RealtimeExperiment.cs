namespace MiniOmni.SK;

/// <summary>The diagnostic of MEAI's experimental realtime abstractions, which the realtime types here share: one suppression covers both.</summary>
internal static class RealtimeExperiment
{
    public const string Diagnostic = "MEAI001";

    public const string UrlFormat = "https://aka.ms/dotnet-extensions-warnings/{0}";
}
