using System.Buffers.Binary;
using System.Runtime.InteropServices;
using NAudio.Wave;
using NAudio.Wave.SampleProviders;

namespace MiniOmni.SK.Audio;

/// <summary>Decodes WAV (PCM 8/16/24/32-bit, IEEE float) and MP3 into the 16 kHz mono float samples Whisper expects.</summary>
public static class AudioDecoder
{
    private const int ReadChunkSamples = 16384;

    /// <summary>Decodes an audio file; the format is sniffed from its header, the extension is only a fallback hint.</summary>
    public static float[] DecodeFile(string path, AudioInputOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.OpenRead(path);
        return DecodeSeekable(stream, AudioContainerSniffer.FromMediaTypeOrExtension(Path.GetExtension(path)), path, options);
    }

    /// <summary>Decodes audio from a stream (read to its end, left open); <paramref name="mediaType"/> such as "audio/wav" or "audio/mpeg" is only a fallback hint.</summary>
    public static float[] Decode(Stream stream, string? mediaType = null, AudioInputOptions? options = null, string? inputName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        inputName ??= DescribeInput("stream", mediaType);
        if (stream.CanSeek)
        {
            return DecodeSeekable(stream, AudioContainerSniffer.FromMediaTypeOrExtension(mediaType), inputName, options);
        }

        // Both decoders seek inside the container, so a forward-only stream is buffered first.
        using var buffered = new MemoryStream();
        stream.CopyTo(buffered);
        buffered.Position = 0;
        return DecodeSeekable(buffered, AudioContainerSniffer.FromMediaTypeOrExtension(mediaType), inputName, options);
    }

    /// <summary>Decodes audio held in memory; <paramref name="mediaType"/> such as "audio/wav" or "audio/mpeg" is only a fallback hint.</summary>
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
        return DecodeSeekable(stream, AudioContainerSniffer.FromMediaTypeOrExtension(mediaType), inputName ?? DescribeInput("byte buffer", mediaType), options);
    }

    private static string DescribeInput(string kind, string? mediaType) =>
        string.IsNullOrWhiteSpace(mediaType) ? kind : $"{kind} ({mediaType})";

    private static float[] DecodeSeekable(Stream stream, AudioContainer declared, string inputName, AudioInputOptions? options)
    {
        options ??= AudioInputOptions.Default;
        long length = stream.Length - stream.Position;
        if (length == 0)
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
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"only {header.Length} bytes, too short for any audio header.");
        }

        // MP3 streams may begin with junk before the first frame; NLayer scans past it when the caller says it is MP3.
        var container = sniffed != AudioContainer.Unknown ? sniffed : declared == AudioContainer.Mp3 ? AudioContainer.Mp3 : AudioContainer.Unknown;
        return container switch
        {
            AudioContainer.Wav => DecodeWav(stream, header, length, inputName, options),
            AudioContainer.Mp3 => DecodeMp3(stream, inputName, options),
            _ => throw new AudioFormatException(
                inputName,
                AudioInputProblem.UnsupportedFormat,
                $"unsupported format: {AudioContainerSniffer.DescribeUnsupported(header)}; only WAV (PCM or IEEE float) and MP3 are read."),
        };
    }

    private static float[] DecodeWav(Stream stream, ReadOnlySpan<byte> header, long length, string inputName, AudioInputOptions options)
    {
        ThrowIfRiffTruncated(header, length, inputName);

        WaveFileReader reader;
        try
        {
            reader = new WaveFileReader(stream);
        }
        catch (Exception ex) when (ex is FormatException or EndOfStreamException or InvalidDataException or ArgumentException)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the WAV header is truncated or corrupt ({ex.Message}).", ex);
        }

        using (reader)
        {
            var format = reader.WaveFormat.AsStandardWaveFormat();
            bool readable = format.Encoding switch
            {
                WaveFormatEncoding.Pcm => format.BitsPerSample is 8 or 16 or 24 or 32,
                WaveFormatEncoding.IeeeFloat => format.BitsPerSample is 32 or 64,
                _ => false,
            };
            if (!readable)
            {
                throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.UnsupportedFormat,
                    $"unsupported WAV encoding {format.Encoding} ({format.BitsPerSample}-bit); only PCM 8/16/24/32-bit and IEEE float are read.");
            }

            return ToWhisperSamples(reader.ToSampleProvider(), inputName, options);
        }
    }

    private static void ThrowIfRiffTruncated(ReadOnlySpan<byte> header, long length, string inputName)
    {
        // NAudio quietly shortens a data chunk that runs past the end; a RIFF size larger than the input means a cut-off upload.
        // 0 and 0xFFFFFFFF are what streaming writers leave when they cannot go back to fill in the size, and RF64 keeps it elsewhere.
        if (!header.StartsWith("RIFF"u8))
        {
            return;
        }

        uint riffSize = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        long declaredLength = riffSize + 8L;
        if (riffSize != 0 && riffSize != uint.MaxValue && declaredLength > length)
        {
            throw new AudioFormatException(
                inputName,
                AudioInputProblem.Truncated,
                $"the WAV data is truncated: the header declares {declaredLength} bytes but the input has {length}.");
        }
    }

    private static float[] DecodeMp3(Stream stream, string inputName, AudioInputOptions options)
    {
        MpegSampleProvider mpeg;
        try
        {
            mpeg = new MpegSampleProvider(stream);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IndexOutOfRangeException or ArgumentException)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"no valid MPEG audio frame found ({ex.Message}).", ex);
        }

        using (mpeg)
        {
            return ToWhisperSamples(mpeg, inputName, options);
        }
    }

    /// <summary>Downmixes to mono, resamples to 16 kHz and reads at most one 30 s window (plus one sample to detect overflow).</summary>
    private static float[] ToWhisperSamples(ISampleProvider source, string inputName, AudioInputOptions options)
    {
        var mono = ToMono(source);
        var resampled = mono.WaveFormat.SampleRate == WhisperLogMel.SampleRate
            ? mono
            : new WdlResamplingSampleProvider(mono, WhisperLogMel.SampleRate);

        int limit = WhisperLogMel.WindowSampleCount + (options.TruncateToWindow ? 0 : 1);
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

        if (count > WhisperLogMel.WindowSampleCount)
        {
            throw new AudioFormatException(
                inputName,
                AudioInputProblem.TooLong,
                $"the audio is longer than Whisper's {WhisperLogMel.WindowSampleCount / WhisperLogMel.SampleRate} s window; set {nameof(AudioInputOptions)}.{nameof(AudioInputOptions.TruncateToWindow)} to keep only the first 30 s.");
        }

        if (count == 0)
        {
            throw new AudioFormatException(inputName, AudioInputProblem.NoSamples, "the input contains no audio samples.");
        }

        Array.Resize(ref samples, count);
        ThrowIfNotFinite(samples, inputName);
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

    private static void ThrowIfNotFinite(ReadOnlySpan<float> samples, string inputName)
    {
        for (int i = 0; i < samples.Length; i++)
        {
            if (!float.IsFinite(samples[i]))
            {
                throw new AudioFormatException(
                    inputName,
                    AudioInputProblem.InvalidSamples,
                    $"sample {i} (at {i / (double)WhisperLogMel.SampleRate:0.###} s after resampling to 16 kHz mono) is {samples[i]}; audio must be finite.");
            }
        }
    }
}
