using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Server.Tests.Infrastructure;
using Xunit.Abstractions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace MiniOmni.SK.Server.Tests;

/// <summary>
/// Two server processes behind a YARP proxy with active health checks, all on loopback: both serve a burst of chats;
/// one is killed mid-run, with a realtime session and chats in flight on it; the session sees the failure, what else it
/// held fails with a gateway error, and every request after the health checks have taken it out is served by the survivor;
/// nothing hangs.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ScaleOutTests(FixtureEngine fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task TwoReplicasShareTheLoadAndTheSurvivorTakesOverWhenOneDies()
    {
        await using var replicas = new Replicas(fixture.ModelPath, output);
        var a = replicas.Start("a");
        var b = replicas.Start("b");
        await Task.WhenAll(a.WaitReadyAsync(Bound), b.WaitReadyAsync(Bound));

        await using var proxy = await Proxy.StartAsync([a.Address, b.Address]);
        await proxy.WaitHealthyAsync(2, Bound);
        using var http = new HttpClient { BaseAddress = proxy.Address, Timeout = Bound };

        // 40 chats at once; once replica a has answered one, it is killed with the rest still running.
        var answeredBy = new System.Collections.Concurrent.ConcurrentBag<string>();
        var firstFromA = new TaskCompletionSource();
        var burst = Enumerable.Range(0, 40).Select(async i =>
        {
            try
            {
                using var response = await http.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = $"Question {i}?" } }, max_tokens = 16 });
                string instance = response.Headers.TryGetValues("X-MiniOmni-Instance", out var values) ? values.First() : "?";
                if (response.IsSuccessStatusCode)
                {
                    answeredBy.Add(instance);
                    if (instance == "a")
                    {
                        firstFromA.TrySetResult();
                    }
                }

                return ((int)response.StatusCode, instance);
            }
            catch (HttpRequestException e)
            {
                return (0, e.Message);
            }
        }).ToList();

        // A realtime session held open on a: a request certainly in flight on it when it dies (a chat of the tiny model may
        // end before the kill lands; a session lasts until closed).
        using var onA = await OpenSessionOnAsync(proxy.Address, "a");
        await firstFromA.Task.WaitAsync(Bound);
        a.Kill();

        // The session in flight on a sees the failure: its connection ends without the session's close.
        var failure = await SessionFailureAsync(onA).WaitAsync(Bound);
        output.WriteLine($"the session on a, after the kill: {failure}");
        Assert.NotNull(failure);
        var results = await Task.WhenAll(burst).WaitAsync(Bound);
        output.WriteLine(string.Join(", ", results.GroupBy(r => r.Item1).Select(g => $"{g.Key}: {g.Count()}")));

        Assert.Contains("a", answeredBy);
        Assert.Contains("b", answeredBy);
        // What a held when it died fails with a gateway error (never a hang, never a 200 with half an answer).
        Assert.All(results.Where(r => r.Item1 != 200), r => Assert.True(r.Item1 is 502 or 503 or 504, $"{r.Item1}: {r.Item2}"));

        // Once the health checks have taken a out, every request is answered by b.
        await proxy.WaitHealthyAsync(1, Bound);
        var after = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            using var response = await http.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = $"Later {i}?" } }, max_tokens = 8 });
            return ((int)response.StatusCode, response.Headers.GetValues("X-MiniOmni-Instance").First());
        })).WaitAsync(Bound);
        Assert.All(after, r => Assert.Equal((200, "b"), r));
    }

    // Opens realtime sessions through the proxy until one lands on the named replica (the proxy spreads them at random),
    // and waits for its session.created: the session is then open on that replica.
    private static async Task<System.Net.WebSockets.ClientWebSocket> OpenSessionOnAsync(Uri proxy, string instance)
    {
        var elsewhere = new List<System.Net.WebSockets.ClientWebSocket>();
        try
        {
            for (int attempt = 0; attempt < 32; attempt++)
            {
                var socket = new System.Net.WebSockets.ClientWebSocket();
                socket.Options.AddSubProtocol("realtime");
                socket.Options.CollectHttpResponseDetails = true;
                await socket.ConnectAsync(new Uri($"ws://{proxy.Authority}/v1/realtime"), CancellationToken.None).WaitAsync(Bound);
                if (socket.HttpResponseHeaders?.TryGetValue("X-MiniOmni-Instance", out var names) == true && names.Contains(instance))
                {
                    var buffer = new byte[64 * 1024];
                    var first = await socket.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(Bound);
                    Assert.Contains("session.created", System.Text.Encoding.UTF8.GetString(buffer, 0, first.Count), StringComparison.Ordinal);
                    return socket;
                }

                elsewhere.Add(socket);
            }

            throw new Xunit.Sdk.XunitException($"no realtime session of 32 landed on replica {instance}");
        }
        finally
        {
            foreach (var socket in elsewhere)
            {
                socket.Abort();
                socket.Dispose();
            }
        }
    }

    // Reads the session until its connection ends: a description of the failure, or null if the server closed it cleanly.
    private static async Task<string?> SessionFailureAsync(System.Net.WebSockets.ClientWebSocket socket)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
                if (received.MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                {
                    // A replica that died cannot close its sessions; the proxy ends the client's with an error status.
                    return socket.CloseStatus == System.Net.WebSockets.WebSocketCloseStatus.NormalClosure ? null : $"closed by the proxy: {socket.CloseStatus} {socket.CloseStatusDescription}";
                }
            }
        }
        catch (System.Net.WebSockets.WebSocketException e)
        {
            return $"{e.WebSocketErrorCode}: {e.Message}";
        }
    }

    /// <summary>Server processes started with `dotnet MiniOmni.SK.Server.dll`; every one is killed when this is disposed, pass or fail.</summary>
    private sealed class Replicas(string modelPath, ITestOutputHelper output) : IAsyncDisposable
    {
        private readonly List<Replica> _started = [];

        public Replica Start(string name)
        {
            int port = FreePort();
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (string argument in new[]
            {
                ServerAssembly(), "--model", modelPath, "--urls", $"http://127.0.0.1:{port}",
                "--MiniOmni:InstanceName", name, "--MiniOmni:Threads", "1", "--MiniOmni:ContextSize", "1024",
                "--MiniOmni:Limits:MaxQueuedAnswers", "40", "--MiniOmni:Limits:MaxAnswerTokens", "16", "--Logging:LogLevel:Default", "Warning",
            })
            {
                start.ArgumentList.Add(argument);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
            process.OutputDataReceived += (_, e) => Log(name, e.Data);
            process.ErrorDataReceived += (_, e) => Log(name, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var replica = new Replica(name, new Uri($"http://127.0.0.1:{port}"), process);
            _started.Add(replica);
            return replica;
        }

        public ValueTask DisposeAsync()
        {
            foreach (var replica in _started)
            {
                replica.Kill();
                replica.Process.Dispose();
            }

            return ValueTask.CompletedTask;
        }

        private void Log(string name, string? line)
        {
            if (line is not null)
            {
                try
                {
                    output.WriteLine($"[{name}] {line}");
                }
                catch (InvalidOperationException)
                {
                    // The test has ended; its output is closed.
                }
            }
        }

        // The server as built beside these tests (same configuration).
        private static string ServerAssembly()
        {
            string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
            for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            {
                string candidate = Path.Combine(directory.FullName, "src", "Server", "bin", configuration, "net10.0", "MiniOmni.SK.Server.dll");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new FileNotFoundException("MiniOmni.SK.Server.dll was not found under src/Server/bin; build the solution first.");
        }
    }

    private sealed record Replica(string Name, Uri Address, Process Process)
    {
        public async Task WaitReadyAsync(TimeSpan bound)
        {
            using var http = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(5) };
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < bound)
            {
                Assert.False(Process.HasExited, $"replica {Name} exited with {(Process.HasExited ? Process.ExitCode : 0)}");
                try
                {
                    if ((await http.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK)
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }
                catch (TaskCanceledException)
                {
                    // One probe outlived its 5 s (a loaded machine starting two servers at once): not ready yet, within the bound.
                }

                await Task.Delay(200);
            }

            Assert.Fail($"replica {Name} was not ready within {bound}");
        }

        public void Kill()
        {
            try
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit(10_000);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    }

    /// <summary>A YARP reverse proxy on loopback: round robin over the replicas, active health checks on /readyz every second.</summary>
    private sealed class Proxy(WebApplication app, Uri address) : IAsyncDisposable
    {
        public Uri Address { get; } = address;

        public static async Task<Proxy> StartAsync(Uri[] replicas)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.Services.AddReverseProxy().LoadFromMemory(
                [new RouteConfig { RouteId = "api", ClusterId = "miniomni", Match = new RouteMatch { Path = "{**rest}" } }],
                [
                    new ClusterConfig
                    {
                        ClusterId = "miniomni",
                        LoadBalancingPolicy = "RoundRobin",
                        HealthCheck = new HealthCheckConfig
                        {
                            Active = new ActiveHealthCheckConfig { Enabled = true, Interval = TimeSpan.FromSeconds(1), Timeout = TimeSpan.FromSeconds(1), Policy = "ConsecutiveFailures", Path = "/readyz" },
                        },
                        Metadata = new Dictionary<string, string> { ["ConsecutiveFailuresHealthPolicy.Threshold"] = "1" },
                        Destinations = replicas.Select((uri, i) => (i, uri)).ToDictionary(d => $"replica{d.i}", d => new DestinationConfig { Address = d.uri.ToString() }),
                    },
                ]);
            var app = builder.Build();
            app.MapReverseProxy();
            await app.StartAsync();
            return new Proxy(app, new Uri(app.Urls.First()));
        }

        /// <summary>Waits until exactly <paramref name="count"/> destinations are healthy.</summary>
        public async Task WaitHealthyAsync(int count, TimeSpan bound)
        {
            var state = app.Services.GetRequiredService<Yarp.ReverseProxy.IProxyStateLookup>();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < bound)
            {
                if (state.TryGetCluster("miniomni", out var cluster) && cluster.Destinations.Values.Count(d => d.Health.Active == DestinationHealth.Healthy) == count)
                {
                    return;
                }

                await Task.Delay(100);
            }

            Assert.Fail($"the proxy did not see {count} healthy replica(s) within {bound}");
        }

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
