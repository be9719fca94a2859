using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;

namespace MiniOmni.SK;

/// <summary>How raw PCM samples are stored.</summary>
internal enum PcmEncoding
{
    /// <summary>16-bit signed little-endian integers.</summary>
    S16LE,

    /// <summary>32-bit little-endian IEEE floats.</summary>
    F32LE,

    /// <summary>G.711 mu-law bytes (<c>audio/pcmu</c>).</summary>
    MuLaw,

    /// <summary>G.711 A-law bytes (<c>audio/pcma</c>).</summary>
    ALaw,
}

/// <summary>Raw PCM as a media type describes it: "audio/pcm;rate=24000;channels=1;encoding=s16le".</summary>
internal sealed record PcmFormat(int SampleRate, int Channels, PcmEncoding Encoding)
{
    /// <summary>What a realtime session hears when it states no input format: 16-bit PCM at 24 kHz, as OpenAI's realtime API.</summary>
    public static PcmFormat Default { get; } = new(24000, 1, PcmEncoding.S16LE);

    /// <summary>Bytes of one sample frame (all channels).</summary>
    public int FrameBytes => Channels * Encoding switch
    {
        PcmEncoding.S16LE => 2,
        PcmEncoding.F32LE => 4,
        _ => 1,
    };
}

/// <summary>
/// The audio a realtime session hears: raw PCM or G.711 at a stated rate, streamed over many appends, or whole WAV / MP3 files.
/// Each append becomes 16 kHz mono samples for Whisper; a raw stream keeps its resampler and any split sample frame
/// between appends. Not thread-safe.
/// </summary>
[Experimental(RealtimeExperiment.Diagnostic)]
internal sealed class RealtimeInputAudio
{
    private readonly PcmFormat? _sessionPcm;
    private StreamingResampler? _resampler;
    private PcmFormat? _streamFormat;
    private byte[] _partialFrame = [];

    /// <summary>Creates the converter for a session whose input format is <paramref name="sessionFormat"/> (null: <see cref="PcmFormat.Default"/>).</summary>
    /// <exception cref="RealtimeRequestException">The format is not one Mini-Omni can hear.</exception>
    public RealtimeInputAudio(RealtimeAudioFormat? sessionFormat)
    {
        if (sessionFormat is null)
        {
            _sessionPcm = PcmFormat.Default;
            return;
        }

        if (MiniOmniMediaTypes.IsReadableAudio(sessionFormat.MediaType))
        {
            return;
        }

        _sessionPcm = ParsePcm(sessionFormat.MediaType, sessionFormat.SampleRate > 0 ? sessionFormat.SampleRate : DefaultRateOf(sessionFormat.MediaType), "the session's InputAudioFormat");
    }

    /// <summary>Converts one appended piece of audio to 16 kHz mono samples (possibly none yet, for a split sample frame).</summary>
    /// <exception cref="RealtimeRequestException">The audio's media type or data is not usable; the message says what was wrong.</exception>
    public float[] Append(DataContent content)
    {
        ArgumentNullException.ThrowIfNull(content);
        if (content.Data.IsEmpty)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, "The appended audio holds no bytes.");
        }

        string mediaType = string.IsNullOrWhiteSpace(content.MediaType) ? "audio/pcm" : content.MediaType;
        if (MiniOmniMediaTypes.IsReadableAudio(mediaType))
        {
            return DecodeFile(content.Data, mediaType);
        }

        // A bare "audio/pcm" append in a G.711 session is G.711: OpenAI's clients label every append so, whatever the session hears.
        var format = _sessionPcm is { Encoding: PcmEncoding.MuLaw or PcmEncoding.ALaw } session && IsBarePcm(mediaType) ? session : ParsePcm(mediaType, _sessionPcm?.SampleRate ?? DefaultRateOf(mediaType), "the appended audio");
        if (format != _streamFormat)
        {
            // A new rate or layout starts a new stream: nothing of the old one can continue into it.
            _streamFormat = format;
            _resampler = new StreamingResampler(format.SampleRate, WhisperLogMel.SampleRate);
            _partialFrame = [];
        }

        ReadOnlySpan<byte> bytes = content.Data.Span;
        byte[]? joined = null;
        if (_partialFrame.Length > 0)
        {
            joined = [.. _partialFrame, .. bytes];
            bytes = joined;
        }

        int whole = bytes.Length / format.FrameBytes * format.FrameBytes;
        _partialFrame = bytes[whole..].ToArray();
        float[] mono = ToMono(bytes[..whole], format);
        ThrowIfNotFinite(mono);
        return _resampler!.Resample(mono);
    }

    /// <summary>Converts a complete piece of audio (a conversation item's) without touching the streamed state.</summary>
    public static float[] DecodeWhole(DataContent content, RealtimeAudioFormat? sessionFormat)
    {
        var converter = new RealtimeInputAudio(sessionFormat);
        return converter.Append(content);
    }

    private static float[] DecodeFile(ReadOnlyMemory<byte> data, string mediaType)
    {
        try
        {
            return AudioDecoder.Decode(data, mediaType, inputName: $"appended audio ({mediaType})");
        }
        catch (AudioFormatException e)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, e.Message, e);
        }
    }

    private static PcmFormat ParsePcm(string mediaType, int fallbackRate, string source)
    {
        string[] parts = mediaType.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        string type = parts.Length > 0 ? parts[0].ToLowerInvariant() : string.Empty;
        var g711 = RealtimeG711.EncodingOf(type);
        if (type != "audio/pcm" && g711 is null)
        {
            throw new RealtimeRequestException(
                RealtimeErrorCodes.UnsupportedAudioFormat,
                $"The media type '{mediaType}' of {source} is not audio Mini-Omni can hear: send raw PCM ('audio/pcm', 16-bit little-endian by default, " +
                $"the rate as ';rate=N' or in the session's InputAudioFormat), G.711 ('{RealtimeG711.MuLawMediaType}', '{RealtimeG711.ALawMediaType}', 8 kHz) " +
                $"or whole files: {MiniOmniMediaTypes.ReadableAudioDescription}.");
        }

        int rate = fallbackRate, channels = 1;
        var encoding = g711 switch
        {
            RealtimeSampleEncoding.MuLaw => PcmEncoding.MuLaw,
            RealtimeSampleEncoding.ALaw => PcmEncoding.ALaw,
            _ => PcmEncoding.S16LE,
        };
        foreach (string parameter in parts.Skip(1))
        {
            int equals = parameter.IndexOf('=');
            string name = (equals < 0 ? parameter : parameter[..equals]).Trim().ToLowerInvariant();
            string value = equals < 0 ? string.Empty : parameter[(equals + 1)..].Trim().Trim('"');
            switch (name)
            {
                case "rate":
                    rate = ParseInt(value, name, mediaType, 1000, 384000);
                    break;
                case "channels":
                    channels = ParseInt(value, name, mediaType, 1, 8);
                    break;
                case "encoding" when g711 is null:
                    encoding = value.ToLowerInvariant() switch
                    {
                        "s16le" or "pcm16" or "pcm_s16le" => PcmEncoding.S16LE,
                        "f32le" or "float32" or "pcm_f32le" => PcmEncoding.F32LE,
                        _ => throw new RealtimeRequestException(
                            RealtimeErrorCodes.UnsupportedAudioFormat,
                            $"The PCM encoding '{value}' in '{mediaType}' is not supported; use 's16le' (16-bit little-endian) or 'f32le' (32-bit float)."),
                    };
                    break;
            }
        }

        if (rate is < 1000 or > 384000)
        {
            throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedAudioFormat, $"The sample rate {rate} Hz of {source} is out of range (1000 to 384000 Hz).");
        }

        return new PcmFormat(rate, channels, encoding);
    }

    // G.711 is 8 kHz unless a rate says otherwise; PCM is OpenAI's 24 kHz.
    private static int DefaultRateOf(string? mediaType) => RealtimeG711.EncodingOf(mediaType) is null ? PcmFormat.Default.SampleRate : RealtimeG711.SampleRate;

    private static bool IsBarePcm(string mediaType) => mediaType.Trim().Equals("audio/pcm", StringComparison.OrdinalIgnoreCase);

    private static int ParseInt(string value, string name, string mediaType, int min, int max) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int parsed) && parsed >= min && parsed <= max
            ? parsed
            : throw new RealtimeRequestException(RealtimeErrorCodes.UnsupportedAudioFormat, $"The '{name}' parameter of '{mediaType}' is '{value}'; it must be a whole number from {min} to {max}.");

    private static float[] ToMono(ReadOnlySpan<byte> bytes, PcmFormat format)
    {
        if (format.Encoding is PcmEncoding.MuLaw or PcmEncoding.ALaw && format.Channels == 1)
        {
            return RealtimeG711.Decode(bytes, format.Encoding == PcmEncoding.MuLaw ? RealtimeSampleEncoding.MuLaw : RealtimeSampleEncoding.ALaw);
        }

        int frames = bytes.Length / format.FrameBytes;
        var mono = new float[frames];
        int sampleBytes = format.FrameBytes / format.Channels;
        for (int frame = 0; frame < frames; frame++)
        {
            float sum = 0;
            for (int channel = 0; channel < format.Channels; channel++)
            {
                var sample = bytes.Slice(frame * format.FrameBytes + channel * sampleBytes, sampleBytes);
                sum += format.Encoding switch
                {
                    PcmEncoding.S16LE => BinaryPrimitives.ReadInt16LittleEndian(sample) / 32768f,
                    PcmEncoding.F32LE => BinaryPrimitives.ReadSingleLittleEndian(sample),
                    PcmEncoding.MuLaw => RealtimeG711.Decode(sample, RealtimeSampleEncoding.MuLaw)[0],
                    _ => RealtimeG711.Decode(sample, RealtimeSampleEncoding.ALaw)[0],
                };
            }

            mono[frame] = sum / format.Channels;
        }

        return mono;
    }

    private static void ThrowIfNotFinite(ReadOnlySpan<float> samples)
    {
        for (int i = 0; i < samples.Length; i++)
        {
            if (!float.IsFinite(samples[i]))
            {
                throw new RealtimeRequestException(RealtimeErrorCodes.InvalidAudio, $"Sample {i} of the appended float PCM is {samples[i]}; audio must be finite.");
            }
        }
    }
}
