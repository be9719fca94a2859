using System.Runtime.InteropServices;
using NAudio.Wave;
using NAudio.Wave.SampleProviders;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Decodes WAV (PCM 8/16/24/32-bit, IEEE float), MP3, and Opus in Ogg or WebM (what browsers record) into the 16 kHz
/// mono float samples Whisper expects. Every failure is an <see cref="AudioFormatException"/> naming the input and what
/// was wrong with it.
/// </summary>
public static class AudioDecoder
{
    private const int ReadChunkSamples = 16384;

    /// <summary>Whether <paramref name="mediaType"/> (<c>audio/wav</c>, <c>audio/webm;codecs=opus</c>, ...) names a container this decoder reads.</summary>
    public static bool CanDecode(string? mediaType) =>
        mediaType is { Length: > 0 } && !mediaType.StartsWith('.') && AudioContainerSniffer.FromMediaTypeOrExtension(mediaType) != AudioContainer.Unknown;

    /// <summary>Decodes an audio file; the format is sniffed from its header, the extension is only a fallback hint.</summary>
    public static float[] DecodeFile(string path, AudioInputOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.OpenRead(path);
        return DecodeSeekable(stream, AudioContainerSniffer.FromMediaTypeOrExtension(Path.GetExtension(path)), path, options ?? AudioInputOptions.Default);
    }

    /// <summary>
    /// Decodes audio from a stream (read to its end, left open); <paramref name="mediaType"/> such as "audio/wav",
    /// "audio/mpeg" or "audio/webm;codecs=opus" is only a fallback hint. A stream that cannot seek is buffered first, up
    /// to <see cref="AudioInputOptions.MaxInputBytes"/>.
    /// </summary>
    public static float[] Decode(Stream stream, string? mediaType = null, AudioInputOptions? options = null, string? inputName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= AudioInputOptions.Default;
        inputName ??= DescribeInput("stream", mediaType);
        var declared = AudioContainerSniffer.FromMediaTypeOrExtension(mediaType);
        if (stream.CanSeek)
        {
            return DecodeSeekable(stream, declared, inputName, options);
        }

        // Every container is read with seeks, so a forward-only stream is buffered first: never past the limit.
        using var buffered = CopyBounded(stream, options.MaxInputBytes, inputName);
        return DecodeSeekable(buffered, declared, inputName, options);
    }

    /// <summary>
    /// Decodes audio from a stream read asynchronously (a request body, which servers often refuse to read synchronously),
    /// buffering at most <see cref="AudioInputOptions.MaxInputBytes"/> of a stream that cannot seek; the stream is left open.
    /// </summary>
    public static async Task<float[]> DecodeAsync(Stream stream, string? mediaType = null, AudioInputOptions? options = null, string? inputName = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= AudioInputOptions.Default;
        inputName ??= DescribeInput("stream", mediaType);
        if (stream.CanSeek)
        {
            return Decode(stream, mediaType, options, inputName);
        }

        using var buffered = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            ThrowIfOverLimit(buffered.Length + read, options.MaxInputBytes, inputName);
            buffered.Write(chunk, 0, read);
        }

        buffered.Position = 0;
        return DecodeSeekable(buffered, AudioContainerSniffer.FromMediaTypeOrExtension(mediaType), inputName, options);
    }

    /// <summary>Decodes audio held in memory; <paramref name="mediaType"/> such as "audio/wav" or "audio/ogg" is only a fallback hint.</summary>
    public static float[] Decode(ReadOnlyMemory<byte> bytes, string? mediaType = null, AudioInputOptions? options = null, string? inputName = null)
    {
        byte[] array;
        int offset = 0;
        if (MemoryMarshal.TryGetArray(bytes, out var segment) && segment.Array is not null)
        {
            array = segment.Array;
            offset = segment.Offset;
        }
        else
        {
            array = bytes.ToArray();
        }

        using var stream = new MemoryStream(array, offset, bytes.Length, writable: false);
        return DecodeSeekable(
            stream,
            AudioContainerSniffer.FromMediaTypeOrExtension(mediaType),
            inputName ?? DescribeInput("byte buffer", mediaType),
            options ?? AudioInputOptions.Default);
    }

    private static string DescribeInput(string kind, string? mediaType) =>
        string.IsNullOrWhiteSpace(mediaType) ? kind : $"{kind} ({mediaType})";

    private static MemoryStream CopyBounded(Stream source, long limit, string inputName)
    {
        var buffered = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = source.Read(chunk)) > 0)
        {
            long length = buffered.Length + read;
            if (length > limit)
            {
                buffered.Dispose();
                ThrowIfOverLimit(length, limit, inputName);
            }

            buffered.Write(chunk, 0, read);
        }

        buffered.Position = 0;
        return buffered;
    }

    private static void ThrowIfOverLimit(long length, long limit, string inputName)
    {
        if (length > limit)
        {
            throw new AudioFormatException(
                inputName,
                AudioInputProblem.InputTooLarge,
                $"the stream is longer than {limit} bytes ({nameof(AudioInputOptions)}.{nameof(AudioInputOptions.MaxInputBytes)}); pass a seekable stream or raise the limit.");
        }
    }

    private static float[] DecodeSeekable(Stream stream, AudioContainer declared, string inputName, AudioInputOptions options)
    {
        long length = stream.Length - stream.Position;
        if (length <= 0)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.Empty, "the input is empty (0 bytes).");
        }

        long start = stream.Position;
        Span<byte> header = stackalloc byte[AudioContainerSniffer.HeaderLength];
        header = header[..stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false)];
        stream.Position = start;

        var sniffed = AudioContainerSniffer.Sniff(header);
        if (sniffed == AudioContainer.Unknown && header.Length < AudioContainerSniffer.HeaderLength)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"only {header.Length} bytes, too short for any audio header.") { ByteOffset = 0 };
        }

        // The header wins over the declared type; only MP3 may start with junk, so only a declared MP3 is searched for frames.
        var container = sniffed != AudioContainer.Unknown ? sniffed : declared == AudioContainer.Mp3 ? AudioContainer.Mp3 : AudioContainer.Unknown;
        try
        {
            return container switch
            {
                AudioContainer.Wav => DecodeWav(stream, length, inputName, options),
                AudioContainer.Mp3 => DecodeMp3(stream, length, inputName, options),
                AudioContainer.Ogg => DecodeOpus(new OggOpusReader(stream, length, inputName), inputName, options),
                AudioContainer.WebM => DecodeOpus(new WebmOpusReader(stream, length, inputName), inputName, options),
                _ when declared != AudioContainer.Unknown => throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.CorruptHeader,
                    $"declared as {AudioContainerSniffer.Describe(declared)}, but the input does not start like one ({AudioContainerSniffer.DescribeUnsupported(header)}).") { ByteOffset = 0 },
                _ => throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.UnsupportedFormat,
                    $"unsupported format: {AudioContainerSniffer.DescribeUnsupported(header)}; WAV (PCM or IEEE float), MP3, and Opus in Ogg or WebM are read."),
            };
        }
        catch (EndOfStreamException ex)
        {
            // Every size is checked against the input's length first, so this means the stream was shorter than it said.
            throw new AudioFormatException(inputName, AudioInputProblem.Truncated, $"the input ended before its {AudioContainerSniffer.Describe(container)} structure did, at byte {stream.Position - start} ({ex.Message}).", ex) { ByteOffset = stream.Position - start };
        }
    }

    private static float[] DecodeWav(Stream stream, long length, string inputName, AudioInputOptions options)
    {
        var layout = WavChunkReader.Read(stream, length, inputName);
        var format = layout.Format;
        if (layout.FrameCount == 0)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.NoSamples, "the input contains no audio samples.");
        }

        // The duration is known from the header: refuse what is too long before decoding anything.
        if (!options.TruncateToWindow && layout.FrameCount > (long)options.MaxSamples * format.SampleRate / WhisperLogMel.SampleRate)
        {
            throw TooLong(inputName, $"{layout.FrameCount / (double)format.SampleRate:0.###} s", options);
        }

        using var data = new RawSourceWaveStream(new StreamSlice(stream, layout.DataOffset, layout.DataLength), format);
        return ToWhisperSamples(data.ToSampleProvider(), inputName, options);
    }

    private static float[] DecodeMp3(Stream stream, long length, string inputName, AudioInputOptions options)
    {
        long audioStart = MpegFrameScanner.FindAudioStart(stream, length, inputName);
        long start = stream.Position;
        using var mpeg = new MpegSampleProvider(new StreamSlice(stream, start + audioStart, length - audioStart), audioStart, inputName);
        return ToWhisperSamples(mpeg, inputName, options);
    }

    private static float[] DecodeOpus(IOpusPacketSource packets, string inputName, AudioInputOptions options) =>
        ToWhisperSamples(new OpusSampleProvider(packets, inputName), inputName, options);

    private static AudioFormatException TooLong(string inputName, string duration, AudioInputOptions options) => new(
        inputName,
        AudioInputProblem.TooLong,
        options.MaxDuration is { } longest
            ? $"the audio ({duration}) is longer than the {longest.TotalSeconds:0.###} s allowed ({nameof(AudioInputOptions)}.{nameof(AudioInputOptions.MaxDuration)})."
            : $"the audio ({duration}) is longer than Whisper's {WhisperLogMel.WindowSampleCount / WhisperLogMel.SampleRate} s window; set {nameof(AudioInputOptions)}.{nameof(AudioInputOptions.TruncateToWindow)} to keep only the first 30 s.");

    /// <summary>Downmixes to mono, resamples to 16 kHz and reads at most <see cref="AudioInputOptions.MaxSamples"/> (plus one sample to detect overflow).</summary>
    private static float[] ToWhisperSamples(ISampleProvider source, string inputName, AudioInputOptions options)
    {
        var mono = ToMono(source);
        var resampled = mono.WaveFormat.SampleRate == WhisperLogMel.SampleRate
            ? mono
            : new WdlResamplingSampleProvider(mono, WhisperLogMel.SampleRate);

        int limit = options.MaxSamples + (options.TruncateToWindow ? 0 : 1);
        var samples = new float[Math.Min(limit, ReadChunkSamples)];
        int count = 0;
        while (count < limit)
        {
            if (count == samples.Length)
            {
                Array.Resize(ref samples, Math.Min(limit, samples.Length * 2));
            }

            int read = resampled.Read(samples.AsSpan(count, Math.Min(ReadChunkSamples, samples.Length - count)));
            if (read == 0)
            {
                break;
            }

            count += read;
        }

        if (count > options.MaxSamples)
        {
            throw TooLong(inputName, $"over {options.MaxSamples / (double)WhisperLogMel.SampleRate:0.###} s", options);
        }

        if (count == 0)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.NoSamples, "the input contains no audio samples.");
        }

        Array.Resize(ref samples, count);
        int bad = AudioSamples.IndexOfNonFinite(samples);
        if (bad >= 0)
        {
            throw new AudioFormatException(
                inputName,
                AudioInputProblem.InvalidSamples,
                $"sample {bad} (at {bad / (double)WhisperLogMel.SampleRate:0.###} s after resampling to 16 kHz mono) is {samples[bad]}; audio must be finite.");
        }

        return samples;
    }

    private static ISampleProvider ToMono(ISampleProvider source)
    {
        int channels = source.WaveFormat.Channels;
        if (channels == 1)
        {
            return source;
        }

        var equalWeights = new float[channels, 1];
        for (int channel = 0; channel < channels; channel++)
        {
            equalWeights[channel, 0] = 1f / channels;
        }

        return new ChannelMixerSampleProvider(source, equalWeights);
    }
}
