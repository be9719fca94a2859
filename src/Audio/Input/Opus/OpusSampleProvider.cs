using Concentus.Structs;
using NAudio.Wave;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Decodes a container's Opus packets with Concentus (managed; the native libopus probe of its factory is not used, so
/// every machine decodes alike) into interleaved 48 kHz float samples at the stream's channel count, dropping the
/// pre-skip, trimming the end as the container says and applying the header's output gain.
/// </summary>
internal sealed class OpusSampleProvider : ISampleProvider
{
    private readonly IOpusPacketSource _source;
    private readonly string _inputName;
    private readonly OpusMSDecoder _decoder;
    private readonly float[] _decoded;
    private readonly float _gain;
    private int _pendingStart;
    private int _pendingEnd;
    private long _decodedSamples;
    private long _skipRemaining;
    private int _packetIndex;

    public OpusSampleProvider(IOpusPacketSource source, string inputName)
    {
        _source = source;
        _inputName = inputName;
        var head = source.Head;
        try
        {
            // Concentus marks its constructors obsolete in favour of OpusCodecFactory, whose decoder P/Invokes a native
            // libopus when the machine has one (and the switch is process-wide). Hostile uploads stay in managed code here,
            // and every machine decodes alike.
#pragma warning disable CS0618
            _decoder = new OpusMSDecoder(OpusHead.SampleRate, head.Channels, head.StreamCount, head.CoupledCount, head.Mapping);
#pragma warning restore CS0618
        }
        catch (Exception ex) when (DecoderFaults.IsDecoderFault(ex) && DecoderFaults.RaisedInside(ex, typeof(OpusMSDecoder).Assembly))
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the {source.ContainerName} Opus header at byte {source.HeadOffset} does not configure a decoder ({ex.Message}).", ex) { ByteOffset = source.HeadOffset };
        }

        _decoded = new float[OpusLimits.MaxPacketSamples * head.Channels];
        _gain = head.GainFactor;
        _skipRemaining = source.PreSkip;
        WaveFormat = WaveFormat.CreateIeeeFloatWaveFormat(OpusHead.SampleRate, head.Channels);
    }

    public WaveFormat WaveFormat { get; }

    public int Read(Span<float> buffer)
    {
        int written = 0;
        while (written < buffer.Length)
        {
            if (_pendingStart == _pendingEnd && !DecodeNextPacket())
            {
                break;
            }

            int count = Math.Min(buffer.Length - written, _pendingEnd - _pendingStart);
            _decoded.AsSpan(_pendingStart, count).CopyTo(buffer[written..]);
            _pendingStart += count;
            written += count;
        }

        return written;
    }

    private bool DecodeNextPacket()
    {
        int channels = WaveFormat.Channels;
        while (_source.TryReadPacket(out var packet))
        {
            _packetIndex++;
            if (packet.Data.IsEmpty)
            {
                // A zero-length packet marks a lost frame; concealing it would invent audio, so it is passed over.
                continue;
            }

            int frames;
            try
            {
                frames = _decoder.DecodeMultistream(packet.Data.Span, _decoded, OpusLimits.MaxPacketSamples, false);
            }
            catch (Exception ex) when (DecoderFaults.IsDecoderFault(ex) && DecoderFaults.RaisedInside(ex, typeof(OpusMSDecoder).Assembly))
            {
                throw new AudioFormatException(
                    _inputName,
                    AudioInputProblem.CorruptData,
                    $"{_source.ContainerName} Opus packet {_packetIndex} (at byte {packet.Offset}) does not decode ({ex.Message}).",
                    ex) { ByteOffset = packet.Offset };
            }

            if (frames <= 0)
            {
                continue;
            }

            long before = _decodedSamples;
            _decodedSamples += frames;
            int kept = frames;
            if (packet.EndGranule >= 0 && packet.EndGranule - before < kept)
            {
                kept = (int)Math.Max(0, packet.EndGranule - before);
            }

            kept = Math.Max(0, kept - packet.DiscardSamples);
            int skipped = (int)Math.Min(_skipRemaining, kept);
            _skipRemaining -= skipped;
            if (skipped == kept)
            {
                continue;
            }

            _pendingStart = skipped * channels;
            _pendingEnd = kept * channels;
            if (_gain != 1f)
            {
                foreach (ref float sample in _decoded.AsSpan(_pendingStart, _pendingEnd - _pendingStart))
                {
                    sample *= _gain;
                }
            }

            return true;
        }

        return false;
    }
}
