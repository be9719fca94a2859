using NAudio.Wave;
using NLayer;

namespace MiniOmni.SK.Audio;

/// <summary>Presents NLayer's managed MP3 decoder as an NAudio sample source (NAudio's own MP3 reader needs Windows ACM).</summary>
internal sealed class MpegSampleProvider : ISampleProvider, IDisposable
{
    private readonly MpegFile mpegFile;
    private float[] readBuffer = [];

    public MpegSampleProvider(Stream stream)
    {
        mpegFile = new MpegFile(stream);
        WaveFormat = WaveFormat.CreateIeeeFloatWaveFormat(mpegFile.SampleRate, mpegFile.Channels);
    }

    public WaveFormat WaveFormat { get; }

    public int Read(Span<float> buffer)
    {
        if (readBuffer.Length < buffer.Length)
        {
            readBuffer = new float[buffer.Length];
        }

        int read = mpegFile.ReadSamples(readBuffer, 0, buffer.Length);
        readBuffer.AsSpan(0, read).CopyTo(buffer);
        return read;
    }

    public void Dispose() => mpegFile.Dispose();
}
