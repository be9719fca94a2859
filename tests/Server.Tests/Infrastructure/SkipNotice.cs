using Xunit.Abstractions;
using Xunit.Sdk;

namespace MiniOmni.SK.Server.Tests.Infrastructure;

/// <summary>
/// Says why a test skipped itself where <c>dotnet test</c> shows it by default. The runner prints a skipped test's name
/// at its default verbosity but its reason only at detailed; xunit's diagnostic messages (switched on in this project's
/// <c>xunit.runner.json</c>) are printed at the default, so the reason goes out as one as well.
/// </summary>
public sealed class SkipNotice(IMessageSink diagnostics)
{
    /// <summary>Reports <paramref name="reason"/> for <paramref name="test"/>; the caller then skips with the same reason.</summary>
    public void Report(string test, string reason) => diagnostics.OnMessage(new DiagnosticMessage($"{test} [SKIP]: {reason}"));
}
