// MEAI001, OPENAI002: the realtime surfaces of Microsoft.Extensions.AI and of the OpenAI SDK are marked experimental;
// measuring them is what this command is for.
#pragma warning disable MEAI001, OPENAI002

using System.ClientModel;
using System.CommandLine;
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.Server.Hosting;
using OpenAI.Realtime;
using Spectre.Console;
using MeaiAudioFormat = Microsoft.Extensions.AI.RealtimeAudioFormat;
using MeaiSessionOptions = Microsoft.Extensions.AI.RealtimeSessionOptions;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>
/// <c>miniomni bench serve</c>: realtime answers for 1, 4 and 8 concurrent sessions, in process (the realtime client over
/// the engine) and through the loopback server with the official OpenAI SDK, on one loaded engine; time to first audio,
/// real-time factor, and the server's responsiveness meanwhile (/healthz latency, gaps between a session's audio chunks).
/// </summary>
internal static class BenchServeCommand
{
    private const int Rate = 24000;

    public static Command Create()
    {
        var model = BenchOptions.Model();
        var sessions = new Option<int[]>("--sessions") { Description = "Concurrent realtime sessions to measure, one run each.", DefaultValueFactory = _ => [1, 4, 8], AllowMultipleArgumentsPerToken = true };
        var answerSteps = new Option<int>("--answer-steps") { Description = "Steps of each answer (64 is about 5 s of speech).", DefaultValueFactory = _ => 64 };
        var threads = new Option<int?>("--threads") { Description = "Engine threads (default: llama.cpp's choice)." };
        var nicenessOption = BenchOptions.Niceness();
        var roundsOption = new Option<int>("--rounds") { Description = "Rounds per session count, alternating in process and through the server.", DefaultValueFactory = _ => 2 };
        var output = BenchOptions.Json();
        var command = new Command("serve", "Time realtime answers in process and through the loopback server (OpenAI SDK) for 1, 4 and 8 sessions; prints JSON.") { model, sessions, answerSteps, threads, roundsOption, nicenessOption, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var directory = new ModelDirectory(parse.GetRequiredValue(model).FullName).EnsureComplete();
            int[] counts = parse.GetValue(sessions) is { Length: > 0 } given ? given : [1, 4, 8];
            var figures = await RunAsync(directory, counts, Math.Max(8, parse.GetValue(answerSteps)), parse.GetValue(threads), Math.Max(1, parse.GetValue(roundsOption)), parse.GetValue(nicenessOption), cancellationToken).ConfigureAwait(false);
            await BenchOptions.WriteAsync(figures, parse.GetValue(output), cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<Dictionary<string, object>> RunAsync(ModelDirectory directory, int[] counts, int steps, int? threads, int rounds, int niceness, CancellationToken cancellationToken)
    {
        int most = counts.Max();
        // Loaded as the server loads it: the engine's threads at the server's lowered priority (--niceness 0: unchanged).
        using var engine = MiniOmniEngine.Load(directory.Path, new MiniOmniEngineOptions { Threads = threads, MaxConcurrentAnswers = most, ComputeNiceness = niceness }, CommandRunner.Logging);
        var random = new Random(4);
        // A 2 s question: a tone with a little noise, at the realtime API's 24 kHz.
        float[] question = [.. Enumerable.Range(0, 2 * Rate).Select(i => (float)(0.1 * Math.Sin(i * 0.02) + 0.01 * (random.NextDouble() - 0.5)))];
        byte[] pcm = Pcm16Wave.ToPcm16Bytes(question);

        await using var server = MiniOmniServer.Build(
            ["--model", directory.Path, "--urls", "http://127.0.0.1:0", "--MiniOmni:TranscribeRealtimeSpeech", "false", "--MiniOmni:EncoderMode", "Fast",
             "--MiniOmni:MaxConcurrentAnswers", most.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--MiniOmni:Limits:MaxAnswerTokens", steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--MiniOmni:Limits:MaxRealtimeSessions", most.ToString(System.Globalization.CultureInfo.InvariantCulture), "--Logging:LogLevel:Default", "Warning"],
            services => services.AddSingleton<IModelLoader>(new LoadedEngine(engine)));
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = new Uri(server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        while (!server.Services.GetRequiredService<ModelHost>().IsReady)
        {
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }

        var inProcess = engine.AsIRealtimeClient(new MiniOmniRealtimeClientOptions { TranscribeUserSpeech = false, EncoderMode = Speech.EncoderMode.Fast });
        var sdk = new RealtimeClient(new ApiKeyCredential("loopback"), new RealtimeClientOptions { Endpoint = new Uri(address, "/v1") });
        var figures = new Dictionary<string, object>
        {
            ["model"] = directory.Path,
            ["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            ["answer_steps"] = steps,
            ["question_seconds"] = 2.0,
            ["rounds"] = rounds,
            ["engine_niceness"] = niceness,
        };

        // Warm-up: one answer each way (JIT, first graph allocations).
        await Status("warming up", () => Task.WhenAll(InProcessAsync(inProcess, pcm, steps, cancellationToken))).ConfigureAwait(false);
        await Status("warming up the server", () => Task.WhenAll(ThroughServerAsync(sdk, pcm, steps, cancellationToken))).ConfigureAwait(false);

        foreach (int count in counts)
        {
            // Rounds alternate in process and through the server, so that a machine's drift weighs on both alike.
            var local = new List<Run>();
            var remote = new List<Run>();
            var health = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                // The health probe runs in both halves: its requests take CPU from the engine (whose threads give way to
                // them), and probing only the server's half made a lone session look 10-20 % slower through the server.
                using (var inProcessProbe = new HealthProbe(address))
                {
                    local.AddRange(await Status($"{count} session(s) in process, round {round + 1}", () => Task.WhenAll(Enumerable.Range(0, count).Select(_ => Guarded(() => InProcessAsync(inProcess, pcm, steps, cancellationToken))))).ConfigureAwait(false));
                    await inProcessProbe.StopAsync().ConfigureAwait(false);
                }

                using var probe = new HealthProbe(address);
                remote.AddRange(await Status($"{count} session(s) through the server, round {round + 1}", () => Task.WhenAll(Enumerable.Range(0, count).Select(_ => Guarded(() => ThroughServerAsync(sdk, pcm, steps, cancellationToken))))).ConfigureAwait(false));
                health.AddRange(await probe.StopAsync().ConfigureAwait(false));
            }

            health.Sort();
            var failures = local.Concat(remote).Where(r => r.Error is not null).Select(r => r.Error!).ToList();
            local.RemoveAll(r => r.Error is not null);
            remote.RemoveAll(r => r.Error is not null);
            double localFirst = Mean(local.Select(r => r.FirstAudio)), remoteFirst = Mean(remote.Select(r => r.FirstAudio));
            double localFactor = Mean(local.Select(r => r.RealTimeFactor)), remoteFactor = Mean(remote.Select(r => r.RealTimeFactor));
            var gaps = remote.SelectMany(r => r.Gaps).Order().ToArray();
            figures[$"sessions_{count}"] = new Dictionary<string, object>
            {
                ["in_process_first_audio_s"] = Math.Round(localFirst, 3),
                ["in_process_first_audio_s_max"] = Math.Round(local.Select(r => r.FirstAudio).DefaultIfEmpty(double.NaN).Max(), 3),
                ["in_process_real_time_factor"] = Math.Round(localFactor, 3),
                ["server_first_audio_s"] = Math.Round(remoteFirst, 3),
                ["server_first_audio_s_max"] = Math.Round(remote.Select(r => r.FirstAudio).DefaultIfEmpty(double.NaN).Max(), 3),
                ["server_real_time_factor"] = Math.Round(remoteFactor, 3),
                ["server_first_audio_overhead_pct"] = Math.Round(100 * (remoteFirst / localFirst - 1), 1),
                ["server_real_time_factor_overhead_pct"] = Math.Round(100 * (remoteFactor / localFactor - 1), 1),
                ["failed_sessions"] = failures,
                ["speech_seconds_per_answer"] = Math.Round(Mean(remote.Select(r => r.SpeechSeconds)), 2),
                ["healthz_ms_p50"] = Percentile([.. health], 0.5),
                ["healthz_ms_p95"] = Percentile([.. health], 0.95),
                ["healthz_ms_max"] = health.Count == 0 ? double.NaN : Math.Round(health.Max(), 1),
                ["healthz_probes"] = health.Count,
                ["audio_chunk_gap_ms_p50"] = Percentile(gaps, 0.5),
                ["audio_chunk_gap_ms_p95"] = Percentile(gaps, 0.95),
                ["audio_chunk_gap_ms_max"] = gaps.Length == 0 ? double.NaN : Math.Round(gaps.Max(), 1),
            };
        }

        await server.StopAsync(cancellationToken).ConfigureAwait(false);
        figures["peak_working_set_mib"] = Math.Round(Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0), 1);
        return figures;
    }

    private sealed record Run(double FirstAudio, double RealTimeFactor, double SpeechSeconds, double[] Gaps)
    {
        public string? Error { get; init; }
    }

    // A session that fails is counted and reported, not allowed to end the whole measurement.
    private static async Task<Run> Guarded(Func<Task<Run>> run)
    {
        try
        {
            return await run().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new Run(double.NaN, double.NaN, 0, []) { Error = $"{e.GetType().Name}: {e.Message}" };
        }
    }

    // One answer through the realtime client over the engine: the same session code the server runs, without HTTP.
    private static async Task<Run> InProcessAsync(IRealtimeClient client, byte[] pcm, int steps, CancellationToken cancellationToken)
    {
        await using var session = await client.CreateSessionAsync(new MeaiSessionOptions
        {
            InputAudioFormat = new MeaiAudioFormat("audio/pcm", Rate),
            VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
            MaxOutputTokens = steps,
        }, cancellationToken).ConfigureAwait(false);
        foreach (byte[] chunk in pcm.Chunk(Rate / 10 * 2))
        {
            await session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(chunk, "audio/pcm")), cancellationToken).ConfigureAwait(false);
        }

        await session.SendAsync(new InputAudioBufferCommitRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        await session.SendAsync(new CreateResponseRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        var timing = new Timing(clock);
        await foreach (var message in session.GetStreamingResponseAsync(cancellationToken).ConfigureAwait(false))
        {
            if (message is OutputTextAudioRealtimeServerMessage { Audio: { } audio } && message.Type == RealtimeServerMessageType.OutputAudioDelta)
            {
                timing.Audio(audio.Length / 4 * 3);
            }
            else if (message.Type == RealtimeServerMessageType.ResponseDone)
            {
                break;
            }
        }

        return timing.Done();
    }

    // One answer through the server, with the official SDK's realtime client: WebSocket, JSON events, base64 audio.
    private static async Task<Run> ThroughServerAsync(RealtimeClient client, byte[] pcm, int steps, CancellationToken cancellationToken)
    {
        using var session = await client.StartConversationSessionAsync("mini-omni", cancellationToken: cancellationToken).ConfigureAwait(false);
        var input = new RealtimeConversationSessionInputAudioOptions();
        input.DisableTurnDetection();
        await session.ConfigureConversationSessionAsync(new RealtimeConversationSessionOptions
        {
            AudioOptions = new RealtimeConversationSessionAudioOptions { InputAudioOptions = input },
            MaxOutputTokenCount = steps,
        }, cancellationToken).ConfigureAwait(false);
        foreach (byte[] chunk in pcm.Chunk(Rate / 10 * 2))
        {
            await session.SendInputAudioAsync(BinaryData.FromBytes(chunk), cancellationToken).ConfigureAwait(false);
        }

        await session.CommitPendingAudioAsync(cancellationToken).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        await session.StartResponseAsync(cancellationToken).ConfigureAwait(false);
        var timing = new Timing(clock);
        await foreach (var update in session.ReceiveUpdatesAsync(cancellationToken).ConfigureAwait(false))
        {
            if (update is RealtimeServerUpdateResponseOutputAudioDelta delta)
            {
                timing.Audio(delta.Delta.ToMemory().Length);
            }
            else if (update is RealtimeServerUpdateResponseDone or RealtimeServerUpdateError)
            {
                break;
            }
        }

        return timing.Done();
    }

    private sealed class Timing(Stopwatch clock)
    {
        private readonly List<double> _gaps = [];
        private double? _first;
        private double _last;
        private long _bytes;

        public void Audio(int bytes)
        {
            double now = clock.Elapsed.TotalSeconds;
            if (_first is null)
            {
                _first = now;
            }
            else
            {
                _gaps.Add((now - _last) * 1000);
            }

            _last = now;
            _bytes += bytes;
        }

        public Run Done()
        {
            double seconds = clock.Elapsed.TotalSeconds, speech = _bytes / 2.0 / Rate;
            return new Run(_first ?? double.NaN, speech > 0 ? seconds / speech : double.NaN, speech, [.. _gaps]);
        }
    }

    /// <summary>GETs /healthz every 100 ms until stopped, recording each latency.</summary>
    private sealed class HealthProbe : IDisposable
    {
        private readonly HttpClient _http;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<double> _latencies = [];
        private readonly Task _loop;

        public HealthProbe(Uri address)
        {
            _http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    var clock = Stopwatch.StartNew();
                    try
                    {
                        (await _http.GetAsync("/healthz", _stop.Token).ConfigureAwait(false)).EnsureSuccessStatusCode();
                        _latencies.Add(clock.Elapsed.TotalMilliseconds);
                        await Task.Delay(100, _stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                    {
                    }
                }
            });
        }

        public async Task<double[]> StopAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _loop.ConfigureAwait(false);
            return [.. _latencies.Order()];
        }

        public void Dispose()
        {
            _stop.Dispose();
            _http.Dispose();
        }
    }

    /// <summary>Hands a server an engine the benchmark loaded and keeps owning.</summary>
    internal sealed class LoadedEngine(IMiniOmniEngine engine) : IModelLoader
    {
        public Task<IMiniOmniEngine> LoadAsync(CancellationToken cancellationToken) => Task.FromResult<IMiniOmniEngine>(new Borrowed(engine));

        // The bench owns the engine; the server must not dispose it.
        private sealed class Borrowed(IMiniOmniEngine inner) : DelegatingMiniOmniEngine(inner);
    }

    private static double Mean(IEnumerable<double> values) => values.DefaultIfEmpty(double.NaN).Average();

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : Math.Round(sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(p * sorted.Length))], 1);

    private static async Task<T> Status<T>(string what, Func<Task<T>> work)
    {
        AnsiConsole.MarkupLineInterpolated($"[grey]bench serve: {what}[/]");
        return await work().ConfigureAwait(false);
    }
}
