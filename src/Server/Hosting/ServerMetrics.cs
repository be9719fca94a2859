using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.AI;

namespace MiniOmni.SK.Server.Hosting;

/// <summary>
/// The server's OpenTelemetry metrics (meter <c>MiniOmni.Server</c>, scraped at <c>/metrics</c>): answers running and
/// waiting, realtime sessions, time to first audio, real-time factor and tokens, by kind of answer.
/// </summary>
public sealed class ServerMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "MiniOmni.Server";

    private readonly UpDownCounter<int> _active;
    private readonly UpDownCounter<int> _sessions;
    private readonly Histogram<double> _firstAudio;
    private readonly Histogram<double> _realTimeFactor;
    private readonly Counter<long> _tokens;
    private readonly Counter<long> _answers;

    public ServerMetrics(IMeterFactory meters, AnswerSlots slots)
    {
        var meter = meters.Create(MeterName);
        _active = meter.CreateUpDownCounter<int>("miniomni.answers.active", "{answer}", "Answers being generated (HTTP and realtime).");
        meter.CreateObservableGauge("miniomni.answers.queued", () => slots.Queued, "{answer}", "HTTP answers waiting for an answer slot.");
        _sessions = meter.CreateUpDownCounter<int>("miniomni.realtime.sessions", "{session}", "Realtime WebSocket sessions open.");
        _firstAudio = meter.CreateHistogram("miniomni.answer.time_to_first_audio", "s", "From the request (or the committed turn) to the first audio sent.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30] });
        _realTimeFactor = meter.CreateHistogram("miniomni.answer.real_time_factor", "1", "Generation time over the seconds of speech generated; under 1 is faster than real time.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.5, 2, 5] });
        _tokens = meter.CreateCounter<long>("miniomni.tokens", "{token}", "Prompt positions read and steps generated, by direction (input, output).");
        _answers = meter.CreateCounter<long>("miniomni.answers", "{answer}", "Answers ended, by kind and outcome.");
    }

    /// <summary>Starts measuring one answer of <paramref name="kind"/> (chat, transcription, speech, realtime).</summary>
    public AnswerMeasurement StartAnswer(string kind) => new(this, kind);

    /// <summary>A realtime session opened (+1) or closed (-1).</summary>
    public void Session(int delta) => _sessions.Add(delta);

    /// <summary>One answer's measurements, recorded when it is disposed.</summary>
    public sealed class AnswerMeasurement : IDisposable
    {
        private readonly ServerMetrics _metrics;
        private readonly KeyValuePair<string, object?> _kind;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private double? _firstAudio;
        private long _speechSamples;
        private int _sampleRate = 24000;
        private UsageDetails? _usage;
        private string _outcome = "failed";
        private bool _ended;

        internal AnswerMeasurement(ServerMetrics metrics, string kind)
        {
            _metrics = metrics;
            _kind = new("miniomni.answer.kind", kind);
            metrics._active.Add(1, _kind);
        }

        /// <summary>Seconds since the answer started.</summary>
        public double Elapsed => _clock.Elapsed.TotalSeconds;

        /// <summary>Seconds from the start to the first audio, once some was sent.</summary>
        public double? TimeToFirstAudio => _firstAudio;

        /// <summary>Records <paramref name="samples"/> of speech at <paramref name="sampleRate"/> sent now.</summary>
        public void Audio(int samples, int sampleRate)
        {
            if (samples <= 0)
            {
                return;
            }

            _firstAudio ??= _clock.Elapsed.TotalSeconds;
            _speechSamples += samples;
            _sampleRate = sampleRate;
        }

        /// <summary>Records the answer's usage.</summary>
        public void Usage(UsageDetails? usage) => _usage = usage ?? _usage;

        /// <summary>The answer ended as <paramref name="outcome"/> (completed, cancelled, failed, incomplete).</summary>
        public void End(string outcome) => _outcome = outcome;

        public void Dispose()
        {
            if (_ended)
            {
                return;
            }

            _ended = true;
            double elapsed = _clock.Elapsed.TotalSeconds;
            _metrics._active.Add(-1, _kind);
            _metrics._answers.Add(1, _kind, new("miniomni.answer.outcome", _outcome));
            if (_firstAudio is { } first)
            {
                _metrics._firstAudio.Record(first, _kind);
            }

            if (_speechSamples > 0)
            {
                _metrics._realTimeFactor.Record(elapsed / (_speechSamples / (double)_sampleRate), _kind);
            }

            if (_usage is { } usage)
            {
                _metrics._tokens.Add(usage.InputTokenCount ?? 0, _kind, new("miniomni.token.direction", "input"));
                _metrics._tokens.Add(usage.OutputTokenCount ?? 0, _kind, new("miniomni.token.direction", "output"));
            }
        }
    }
}
