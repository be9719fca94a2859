using System.Buffers.Binary;
using Concentus.Enums;
using Concentus.Structs;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Writes mono speech as an Ogg Opus file (RFC 7845) while it is produced: Concentus encodes 20 ms frames, and each
/// packet goes out as soon as the next one is known (the last page must carry the end-of-stream flag and the exact
/// length). The stream is written forward only, so it can be an HTTP response.
/// </summary>
public sealed class OggOpusWriter : IDisposable
{
    /// <summary>The bit rate used unless told otherwise: clear speech at a tenth of 24 kHz PCM16.</summary>
    public const int DefaultBitrate = 32000;

    private const int GranuleRate = 48000;
    private const byte FirstPageFlag = 0x02, LastPageFlag = 0x04;

    private readonly Stream _destination;
    private readonly OpusEncoder _encoder;
    private readonly int _sampleRate;
    private readonly int _frameSamples;
    private readonly int _preSkip;
    private readonly float[] _frame;
    private readonly byte[] _packet = new byte[1275];
    private readonly uint _serial;
    private int _frameFill;
    private uint _sequence;
    private long _samplesIn;
    private long _framesEncoded;
    private byte[]? _held;
    private bool _completed;

    /// <summary>A writer of <paramref name="sampleRate"/> mono samples (8, 12, 16, 24 or 48 kHz) into <paramref name="destination"/>, which it leaves open.</summary>
    public OggOpusWriter(Stream destination, int sampleRate = Pcm16Wave.SpeechSampleRate, int bitrate = DefaultBitrate)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (sampleRate is not (8000 or 12000 or 16000 or 24000 or 48000))
        {
            throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "Opus encodes 8, 12, 16, 24 or 48 kHz.");
        }

        _destination = destination;
        _sampleRate = sampleRate;
        _frameSamples = sampleRate / 50;
        _frame = new float[_frameSamples];
        // The managed encoder, as the decoder: the factory would P/Invoke a native libopus when one is installed.
#pragma warning disable CS0618
        _encoder = new OpusEncoder(sampleRate, 1, OpusApplication.OPUS_APPLICATION_VOIP) { Bitrate = bitrate, SignalType = OpusSignal.OPUS_SIGNAL_VOICE };
#pragma warning restore CS0618
        _preSkip = _encoder.Lookahead * (GranuleRate / sampleRate);
        _serial = (uint)Random.Shared.Next();
        WritePage(Head(), FirstPageFlag, 0);
        WritePage(Tags(), 0, 0);
    }

    /// <summary>Adds samples in [-1, 1]; whole 20 ms frames are encoded and written.</summary>
    public void Write(ReadOnlySpan<float> samples)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        _samplesIn += samples.Length;
        while (!samples.IsEmpty)
        {
            int take = Math.Min(samples.Length, _frameSamples - _frameFill);
            samples[..take].CopyTo(_frame.AsSpan(_frameFill));
            _frameFill += take;
            samples = samples[take..];
            if (_frameFill == _frameSamples)
            {
                EncodeFrame();
            }
        }
    }

    /// <summary>Encodes what is left (padded with silence to whole frames) and writes the last page; the file is then complete.</summary>
    public void Complete()
    {
        if (_completed)
        {
            return;
        }

        // Enough frames that the decoder's delay (the pre-skip) is covered: all of the speech comes back out.
        long needed = (_samplesIn + (_preSkip * _sampleRate / GranuleRate) + _frameSamples - 1) / _frameSamples;
        if (_frameFill > 0)
        {
            _frame.AsSpan(_frameFill).Clear();
            EncodeFrame();
        }

        while (_framesEncoded < Math.Max(needed, 1))
        {
            _frame.AsSpan().Clear();
            EncodeFrame();
        }

        // The last granule position says how many samples are real: decoders drop the padding.
        WritePage(_held!, LastPageFlag, _preSkip + (_samplesIn * (GranuleRate / _sampleRate)));
        _held = null;
        _completed = true;
        _destination.Flush();
    }

    /// <summary>Completes the file if it was not.</summary>
    public void Dispose() => Complete();

    private void EncodeFrame()
    {
        int length = _encoder.Encode(_frame, _frameSamples, _packet, _packet.Length);
        _frameFill = 0;
        if (_held is not null)
        {
            // A page's granule position counts every sample its packets decode to, the pre-skip included.
            WritePage(_held, 0, _framesEncoded * _frameSamples * (GranuleRate / _sampleRate));
        }

        _framesEncoded++;
        _held = _packet.AsSpan(0, length).ToArray();
    }

    private byte[] Head()
    {
        var head = new byte[19];
        "OpusHead"u8.CopyTo(head);
        head[8] = 1; // version
        head[9] = 1; // channels
        BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(10), (ushort)_preSkip);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(12), (uint)_sampleRate);
        // Output gain 0, mapping family 0 (mono or stereo, no table).
        return head;
    }

    private static byte[] Tags()
    {
        byte[] vendor = "MiniOmni.SK (Concentus)"u8.ToArray();
        var tags = new byte[8 + 4 + vendor.Length + 4];
        "OpusTags"u8.CopyTo(tags);
        BinaryPrimitives.WriteUInt32LittleEndian(tags.AsSpan(8), (uint)vendor.Length);
        vendor.CopyTo(tags, 12);
        return tags; // no user comments
    }

    // One packet per page: a page carries up to 255 lacing values, so any Opus packet (at most 1275 bytes) fits.
    private void WritePage(ReadOnlySpan<byte> packet, byte flags, long granule)
    {
        int segments = (packet.Length / 255) + 1;
        var page = new byte[27 + segments + packet.Length];
        "OggS"u8.CopyTo(page);
        page[5] = flags;
        BinaryPrimitives.WriteInt64LittleEndian(page.AsSpan(6), granule);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(14), _serial);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(18), _sequence++);
        page[26] = (byte)segments;
        for (int i = 0; i < segments; i++)
        {
            page[27 + i] = (byte)(i < segments - 1 ? 255 : packet.Length % 255);
        }

        packet.CopyTo(page.AsSpan(27 + segments));
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(22), OggCrc.Compute(page));
        _destination.Write(page);
    }
}
