using Microsoft.Extensions.AI;

namespace MiniOmni.SK.Samples;

/// <summary>Collects the streamed speech of an answer, plays it where NAudio can, and writes it to a WAV.</summary>
public sealed class SpokenAnswer : IDisposable
{
    private readonly List<byte> _pcm = [];
    private readonly NAudio.Wave.BufferedWaveProvider? _buffer;
    private readonly NAudio.Wave.IWavePlayer? _player;

    public SpokenAnswer(bool play)
    {
        // NAudio's playback is Windows' audio API; elsewhere, or on a server without an audio device, the answer is only written.
        if (!play || !OperatingSystem.IsWindows())
        {
            return;
        }

        try
        {
            _buffer = new NAudio.Wave.BufferedWaveProvider(new NAudio.Wave.WaveFormat(24000, 16, 1), TimeSpan.FromMinutes(2));
            var player = new NAudio.Wave.WaveOut();
            player.Init(_buffer);
            player.Play();
            _player = player;
        }
        catch (Exception e) when (e is InvalidOperationException or NAudio.MmException)
        {
            Console.Error.WriteLine($"(no audio output: {e.Message}; the answer is only written to the WAV)");
            _buffer = null;
        }
    }

    public TimeSpan? FirstAudio { get; private set; }

    public int SampleCount => _pcm.Count / 2;

    /// <summary>Takes one streamed chunk (PCM16 at 24 kHz) that arrived <paramref name="elapsed"/> after the question.</summary>
    public void Add(DataContent chunk, TimeSpan elapsed)
    {
        FirstAudio ??= elapsed;
        _pcm.AddRange(chunk.Data.ToArray());
        _buffer?.AddSamples(chunk.Data.ToArray(), 0, chunk.Data.Length);
    }

    /// <summary>Writes what was said to <paramref name="path"/> as a 24 kHz WAV.</summary>
    public void Write(string path)
    {
        using var writer = new NAudio.Wave.WaveFileWriter(path, new NAudio.Wave.WaveFormat(24000, 16, 1));
        writer.Write([.. _pcm], 0, _pcm.Count);
    }

    public void Dispose() => _player?.Dispose();
}
