using System.CommandLine;
using Microsoft.Extensions.Hosting;
using MiniOmni.SK.Server.Hosting;

namespace MiniOmni.SK.Cli.Commands;

/// <summary><c>miniomni serve</c>: the OpenAI-compatible server and voice page, as <c>dotnet run --project src/Server</c> runs them.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var command = new Command("serve", "Serve the OpenAI-compatible API and the voice page on http://localhost:5000 (options as src/Server takes them: --model, --urls, --api-key, --MiniOmni:...).")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            string[] args = [.. parse.UnmatchedTokens];
            await using var server = MiniOmniServer.Build(args);
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
            await server.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        });
        return command;
    }
}
