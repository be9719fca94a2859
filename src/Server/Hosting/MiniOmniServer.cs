using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using MiniOmni.SK.Server.Api;
using MiniOmni.SK.Server.Realtime;
using OpenTelemetry.Metrics;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>The server's composition: its services and its HTTP pipeline.</summary>
public static class MiniOmniServer
{
    /// <summary>Short command-line switches for the settings people set most.</summary>
    private static readonly Dictionary<string, string> Switches = new()
    {
        ["--model"] = "MiniOmni:Model",
        ["--api-key"] = "MiniOmni:ApiKey",
        ["--cache"] = "MiniOmni:Cache",
        ["--threads"] = "MiniOmni:Threads",
        ["--max-concurrent-answers"] = "MiniOmni:MaxConcurrentAnswers",
    };

    /// <summary>
    /// Builds the server from <paramref name="args"/> (<c>--model</c>, <c>--urls</c>, any <c>--MiniOmni:Section:Key value</c>);
    /// <paramref name="configureServices"/> may replace services (an <see cref="IModelLoader"/> that hands over an engine loaded elsewhere).
    /// </summary>
    public static WebApplication Build(string[] args, Action<IServiceCollection>? configureServices = null)
    {
        string webRoot = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            WebRootPath = Directory.Exists(webRoot) ? webRoot : null,
        });
        builder.Configuration.AddCommandLine(args, Switches);
        if (MiniOmniServerOptionsValidator.ListenUrls(builder.Configuration).FirstOrDefault() is null)
        {
            // Loopback unless told otherwise.
            builder.WebHost.UseUrls("http://localhost:5000");
        }

        AddServices(builder.Services);
        configureServices?.Invoke(builder.Services);
        var app = builder.Build();
        MapPipeline(app);
        return app;
    }

    /// <summary>Registers the server's services: options, model, clients, limits, health, metrics.</summary>
    public static void AddServices(IServiceCollection services)
    {
        services.AddOptions<MiniOmniServerOptions>().BindConfiguration(MiniOmniServerOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<MiniOmniServerOptions>, MiniOmniServerOptionsValidator>();
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<MiniOmniServerOptions>>((kestrel, options) =>
        {
            kestrel.Limits.MaxRequestBodySize = options.Value.Limits.MaxRequestBodyBytes;
            kestrel.AddServerHeader = false;
        });
        services.AddOptions<FormOptions>().Configure<IOptions<MiniOmniServerOptions>>((form, options) => form.MultipartBodyLengthLimit = options.Value.Limits.MaxRequestBodyBytes);
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, ServerJsonContext.Default));

        services.AddSingleton<ModelHost>();
        services.AddSingleton<IModelLoader, StoreModelLoader>();
        services.AddHostedService<ModelLoadingService>();
        services.AddSingleton<ServerClients>();
        services.AddSingleton<AnswerSlots>();
        services.AddSingleton<RealtimeSessions>();
        services.AddSingleton<ServerMetrics>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<EphemeralKeys>();
        services.AddSingleton<SpokenAnswers>();
        services.AddBrowserAccess();

        services.AddExceptionHandler<ApiExceptionHandler>();
        services.AddProblemDetails();
        services.AddRateLimiter(limiter =>
        {
            limiter.AddPolicy(AnswerSlots.Policy, context => RateLimitPartition.Get(AnswerSlots.Policy, _ => context.RequestServices.GetRequiredService<AnswerSlots>().Limiter));
            limiter.OnRejected = async (rejected, _) =>
            {
                var options = rejected.HttpContext.RequestServices.GetRequiredService<IOptions<MiniOmniServerOptions>>().Value;
                var slots = rejected.HttpContext.RequestServices.GetRequiredService<AnswerSlots>();
                await new ApiError(429, $"All {slots.PermitLimit} answer slots are busy and {slots.QueueLimit} answers are waiting (MiniOmni:Limits:MaxQueuedAnswers); try again shortly.",
                    "rate_limit_exceeded", null, "queue_full").WriteAsync(rejected.HttpContext, options.Limits.RetryAfterSeconds).ConfigureAwait(false);
            };
        });
        services.AddHealthChecks().AddCheck<ModelReadyHealthCheck>("model", tags: ["ready"]);
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(ServerMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.RateLimiting")
            .AddPrometheusExporter());
    }

    /// <summary>The pipeline: errors as OpenAI's, the page, CORS and the origin check, the key check, the limiter, health, metrics and the API.</summary>
    public static void MapPipeline(WebApplication app)
    {
        // Which replica answered: for logs and load balancer checks when several run behind one address.
        string instance = app.Configuration["MiniOmni:InstanceName"] is { Length: > 0 } name ? name : $"{Environment.MachineName}:{Environment.ProcessId}";
        app.Use((context, next) =>
        {
            context.Response.Headers["X-MiniOmni-Instance"] = instance;
            return next(context);
        });
        app.UseExceptionHandler();
        app.UseWebSockets();
        app.UseDefaultFiles();
        app.UseStaticFiles();
        // Preflights are answered before the key check (a browser sends them without the key); then foreign pages are refused.
        app.UseCors(BrowserAccessSetup.CorsPolicy);
        app.UseMiddleware<BrowserOriginMiddleware>();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseRateLimiter();

        // Live: the process answers. Ready: the model is loaded and the queue has room (a load balancer sends work elsewhere otherwise).
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/readyz", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains("ready"),
            ResultStatusCodes = { [HealthStatus.Healthy] = 200, [HealthStatus.Degraded] = 503, [HealthStatus.Unhealthy] = 503 },
        });
        app.MapPrometheusScrapingEndpoint("/metrics");

        var api = app.MapGroup("/v1").AddEndpointFilter(async (context, next) =>
        {
            var host = context.HttpContext.RequestServices.GetRequiredService<ModelHost>();
            if (!host.IsReady)
            {
                var options = context.HttpContext.RequestServices.GetRequiredService<IOptions<MiniOmniServerOptions>>().Value;
                await ApiError.From(new ModelNotReadyException(host.Failure is { } failure ? $"The model failed to load: {failure.Message}" : "The model is still loading; try again shortly."))
                    .WriteAsync(context.HttpContext, options.Limits.RetryAfterSeconds).ConfigureAwait(false);
                return Results.Empty;
            }

            return await next(context).ConfigureAwait(false);
        });
        api.MapPost("/chat/completions", ChatCompletionsEndpoint.HandleAsync).RequireRateLimiting(AnswerSlots.Policy);
        api.MapPost("/audio/transcriptions", AudioEndpoints.TranscribeAsync).RequireRateLimiting(AnswerSlots.Policy).DisableAntiforgery();
        api.MapPost("/audio/speech", AudioEndpoints.SpeakAsync).RequireRateLimiting(AnswerSlots.Policy);
        api.MapGet("/models", ModelsEndpoint.List);
        api.MapGet("/models/{id}", ModelsEndpoint.Get);
        api.Map("/realtime", RealtimeEndpoint.HandleAsync);
        api.MapPost("/realtime/client_secrets", ClientSecretsEndpoint.HandleAsync);
        // Outside the group: an unknown path is 404 even while the model loads.
        app.Map("/v1/{**path}", UnknownPathEndpoint.HandleAsync);
    }
}
