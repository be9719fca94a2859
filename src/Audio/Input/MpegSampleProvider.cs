using NAudio.Wave;
using NLayer;

namespace MiniOmni.SK.Audio;

/// <summary>
/// Presents NLayer's managed MP3 decoder as an NAudio sample source (NAudio's own MP3 reader needs Windows ACM); a
/// damaged frame that NLayer trips over becomes an <see cref="AudioFormatException"/> naming the input.
/// </summary>
internal sealed class MpegSampleProvider : ISampleProvider, IDisposable
{
    private readonly MpegFile _mpegFile;
    private readonly string _inputName;
    private float[] _readBuffer = [];
    private long _samplesRead;
    private readonly Stream _stream;
    private readonly long _firstFrameAt;

    /// <summary>Opens the MP3 stream, which must start at the first frame (see <see cref="MpegFrameScanner"/>).</summary>
    public MpegSampleProvider(Stream stream, long firstFrameAt, string inputName)
    {
        _inputName = inputName;
        _stream = stream;
        _firstFrameAt = firstFrameAt;
        try
        {
            _mpegFile = new MpegFile(stream);
            WaveFormat = WaveFormat.CreateIeeeFloatWaveFormat(_mpegFile.SampleRate, _mpegFile.Channels);
        }
        catch (Exception ex) when (DecoderFaults.IsDecoderFault(ex) && DecoderFaults.RaisedInside(ex, typeof(MpegFile).Assembly))
        {
            throw new AudioFormatException(inputName, AudioInputProblem.CorruptHeader, $"the first MPEG audio frame (at byte {firstFrameAt}) does not decode ({ex.Message}).", ex) { ByteOffset = firstFrameAt };
        }
    }

    public WaveFormat WaveFormat { get; }

    public int Read(Span<float> buffer)
    {
        if (_readBuffer.Length < buffer.Length)
        {
            _readBuffer = new float[buffer.Length];
        }

        int read;
        try
        {
            read = _mpegFile.ReadSamples(_readBuffer, 0, buffer.Length);
        }
        catch (Exception ex) when (DecoderFaults.IsDecoderFault(ex) && DecoderFaults.RaisedInside(ex, typeof(MpegFile).Assembly))
        {
            double seconds = _samplesRead / (double)WaveFormat.Channels / WaveFormat.SampleRate;
            // NLayer reads ahead: the damaged frame lies before the point it had read up to.
            long readTo = _firstFrameAt + _stream.Position;
            throw new AudioFormatException(_inputName, AudioInputProblem.CorruptData, $"the MP3 data is damaged at or after {seconds:0.###} s, before byte {readTo}: NLayer failed on a frame ({ex.Message}).", ex) { ByteOffset = readTo };
        }

        _readBuffer.AsSpan(0, read).CopyTo(buffer);
        _samplesRead += read;
        return read;
    }

    public void Dispose() => _mpegFile.Dispose();
}
