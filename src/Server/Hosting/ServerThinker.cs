using System.ClientModel;
using Microsoft.Extensions.AI;
using OpenAI;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>The configured thinker (<see cref="ThinkerSettings"/>) as a chat client over OpenAI's SDK, or null when none is set.</summary>
internal static class ServerThinker
{
    public static IChatClient? Create(ThinkerSettings settings)
    {
        if (!settings.Enabled)
        {
            return null;
        }

        string? key = string.IsNullOrWhiteSpace(settings.ApiKeyVariable) ? null : Environment.GetEnvironmentVariable(settings.ApiKeyVariable);
        // A local endpoint often needs no key; the SDK still wants one. No retries: a spoken turn fails at once, with the status, rather than after a backoff.
        var credential = new ApiKeyCredential(string.IsNullOrEmpty(key) ? "no-key" : key);
        return new OpenAIClient(credential, new OpenAIClientOptions { Endpoint = new Uri(settings.Endpoint!), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) })
            .GetChatClient(settings.Model)
            .AsIChatClient()
            .AsBuilder()
            // A request's model names Mini-Omni (the server's model), not the thinker's: the thinker keeps its own.
            .ConfigureOptions(options => options.ModelId = settings.Model)
            .Build();
    }
}
