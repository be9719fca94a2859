// The converter takes MEAI's experimental realtime types (MEAI001).
#pragma warning disable MEAI001

using System.Buffers.Binary;
using Microsoft.Extensions.AI;
using NAudio.Wave;
using NAudio.Wave.SampleProviders;
using static MiniOmni.SK.Connector.Tests.Realtime.Signals;

namespace MiniOmni.SK.Connector.Tests.Realtime;

/// <summary>Appended audio to 16 kHz mono: streamed PCM in any chunking, layouts, and what is refused.</summary>
public sealed class RealtimeInputAudioTests
{
    [Fact]
    public void StreamedResamplingEqualsResamplingTheWholeStream()
    {
        var tone = Tone(48000, 0.5f, rate: 48000);
        var whole = ReadAll(new WdlResamplingSampleProvider(new ArraySampleProvider(tone, 48000), 16000));
        var resampler = new StreamingResampler(48000, 16000);
        var random = new Random(7);
        var streamed = new List<float>();

        for (int at = 0; at < tone.Length;)
        {
            int count = Math.Min(tone.Length - at, random.Next(1, 9000));
            streamed.AddRange(resampler.Resample(tone.AsSpan(at, count)));
            at += count;
        }

        Assert.Equal(16000, whole.Length);
        Assert.Equal(whole, streamed);
    }

    [Fact]
    public void SampleFramesSplitBetweenAppendsAreJoined()
    {
        var samples = Tone(1000, 0.4f);
        byte[] pcm = MiniOmniMediaTypes.EncodeSpeechChunk(samples);
        var converter = new RealtimeInputAudio(new RealtimeAudioFormat("audio/pcm", 16000));

        float[] heard = [.. pcm.Chunk(333).SelectMany(piece => converter.Append(new DataContent(piece, "audio/pcm")))];

        Assert.Equal(ThroughPcm16(samples), heard);
    }

    [Fact]
    public void StereoIsMixedAndFloatPcmIsRead()
    {
        var left = Tone(320, 0.5f);
        var bytes = new byte[left.Length * 8];
        for (int i = 0; i < left.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 8), left[i]);
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 8 + 4), 0.25f);
        }

        var converter = new RealtimeInputAudio(null);
        float[] heard = converter.Append(new DataContent(bytes, "audio/pcm;rate=16000;channels=2;encoding=f32le"));

        Assert.Equal(left.Select(v => (v + 0.25f) / 2), heard);
    }

    [Fact]
    public void TheMediaTypeRateOverridesTheSessionRate()
    {
        var converter = new RealtimeInputAudio(new RealtimeAudioFormat("audio/pcm", 16000));

        float[] heard = converter.Append(new DataContent(new byte[48000 * 2], "audio/pcm;rate=48000"));

        Assert.Equal(16000, heard.Length);
    }

    [Fact]
    public void RawPcmWithoutAStatedRateIsTakenAs24kHz()
    {
        var converter = new RealtimeInputAudio(null);

        float[] heard = converter.Append(new DataContent(new byte[24000 * 2], "audio/pcm"));

        Assert.Equal(16000, heard.Length);
    }

    [Fact]
    public void NonFiniteFloatSamplesAreRefusedByIndex()
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(8), float.NaN);
        var converter = new RealtimeInputAudio(null);

        var error = Assert.Throws<RealtimeRequestException>(() => converter.Append(new DataContent(bytes, "audio/pcm;encoding=f32le;rate=16000")));

        Assert.Equal(RealtimeErrorCodes.InvalidAudio, error.ErrorCode);
        Assert.Contains("Sample 2", error.Message);
    }

    [Fact]
    public void EmptyAudioIsRefused()
    {
        var error = Assert.Throws<RealtimeRequestException>(() => new RealtimeInputAudio(null).Append(new DataContent(Array.Empty<byte>(), "audio/pcm")));

        Assert.Contains("no bytes", error.Message);
    }

    private static float[] ReadAll(ISampleProvider provider)
    {
        var all = new List<float>();
        var buffer = new float[4096];
        int read;
        while ((read = provider.Read(buffer)) > 0)
        {
            all.AddRange(buffer.AsSpan(0, read));
        }

        return [.. all];
    }

    private sealed class ArraySampleProvider(float[] samples, int rate) : ISampleProvider
    {
        private int _position;

        public WaveFormat WaveFormat { get; } = WaveFormat.CreateIeeeFloatWaveFormat(rate, 1);

        public int Read(Span<float> buffer)
        {
            int count = Math.Min(buffer.Length, samples.Length - _position);
            samples.AsSpan(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }
    }
}
