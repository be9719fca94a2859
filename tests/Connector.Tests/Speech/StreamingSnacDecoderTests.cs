using MiniOmni.SK.Speech;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Speech;

/// <summary>The joined stream against decoding the whole answer at once, for the release's schedule and ours.</summary>
public sealed class StreamingSnacDecoderTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    private const int SamplesPerFrame = 2048;

    [Fact]
    public void ContextAndLookaheadMakeTheStreamFarCloserToTheWholeDecodeThanIsolatedChunks()
    {
        var layers = GoldenTasks.AudioLayers("A1A2_BATCH");
        var codes = DelayPattern.Frames(layers);
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: codes.FrameCount);
        float[] whole = decoder.Decode(codes);

        double isolated = SignalToNoise(whole, Stream(decoder, layers, StreamingOptions.Isolated));
        double withContext = SignalToNoise(whole, Stream(decoder, layers, new StreamingOptions()));
        double nearExact = SignalToNoise(whole, Stream(decoder, layers, StreamingOptions.NearExact));
        double growing = SignalToNoise(whole, Stream(decoder, layers, StreamingOptions.Speech));
        output.WriteLine($"SNR against the whole-answer decode: isolated 4-frame chunks {isolated:F1} dB, default (1 frame of context, 1 of lookahead) {withContext:F1} dB, near-exact (2 and 2) {nearExact:F1} dB, the engine's growing chunks {growing:F1} dB");
        Assert.True(growing >= withContext - 1, $"growing chunks {growing:F1} dB against {withContext:F1} dB");

        Assert.True(withContext > isolated + 20, $"{withContext:F1} dB is not far above {isolated:F1} dB");
        Assert.True(withContext > 45, $"{withContext:F1} dB");
        Assert.True(nearExact > 80, $"{nearExact:F1} dB");
    }

    [Theory]
    [InlineData(4, 0, 0)]
    [InlineData(4, 4, 1)]
    [InlineData(2, 8, 2)]
    public void EveryFrameIsEmittedOnceAndInOrder(int chunk, int left, int lookahead)
    {
        var layers = GoldenTasks.AudioLayers("A1A2");
        var codes = DelayPattern.Frames(layers);
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: 16);

        float[] stream = Stream(decoder, layers, new StreamingOptions(chunk, left, lookahead));

        Assert.Equal(codes.FrameCount * SamplesPerFrame, stream.Length);
        // The first chunk has no left context to lack: it equals decoding its frames (plus lookahead) directly.
        float[] first = decoder.Decode(codes.Slice(0, chunk + lookahead))[..(chunk * SamplesPerFrame)];
        Assert.Equal(first, stream[..first.Length]);
    }

    [Fact]
    public void ChunksDoubleUpToTheLargestAndFlushEmitsTheRest()
    {
        var layers = GoldenTasks.AudioLayers("A1A2");
        int frameCount = DelayPattern.CompleteFrames(layers.Min(l => l.Count));
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: StreamingOptions.Speech.WindowFrames);
        var streaming = new StreamingSnacDecoder(decoder, SamplesPerFrame, StreamingOptions.Speech);

        var chunks = new List<int>();
        for (int frame = 0; frame < frameCount; frame++)
        {
            if (streaming.Append(DelayPattern.Frame(layers, frame)) is { Length: > 0 } chunk)
            {
                chunks.Add(chunk.Length / SamplesPerFrame);
            }
        }

        int flushed = streaming.Flush().Length / SamplesPerFrame;
        output.WriteLine($"{frameCount} frames: chunks of {string.Join(", ", chunks)} frames, then {flushed} flushed");
        Assert.True(frameCount >= 2 + 4 + 8 + 16 + 16 + 1, $"the fixture answer has only {frameCount} frames");
        Assert.Equal([2, 4, 8, 16, 16], chunks.Take(5));
        Assert.All(chunks.Skip(3), size => Assert.Equal(16, size));
        Assert.Equal(frameCount, chunks.Sum() + flushed);
    }

    [Fact]
    public void AWindowLargerThanTheDecoderIsRefused()
    {
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => new StreamingSnacDecoder(decoder, SamplesPerFrame, new StreamingOptions(4, 4, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StreamingSnacDecoder(decoder, SamplesPerFrame, new StreamingOptions(0, 0, 0)));
    }

    private static float[] Stream(SnacDecoder decoder, List<IReadOnlyList<int>> layers, StreamingOptions options)
    {
        var streaming = new StreamingSnacDecoder(decoder, SamplesPerFrame, options);
        var samples = new List<float>();
        for (int frame = 0; frame < DelayPattern.CompleteFrames(layers.Min(l => l.Count)); frame++)
        {
            samples.AddRange(streaming.Append(DelayPattern.Frame(layers, frame)));
        }

        samples.AddRange(streaming.Flush());
        return [.. samples];
    }

    private static double SignalToNoise(float[] reference, float[] stream)
    {
        Assert.Equal(reference.Length, stream.Length);
        double signal = reference.Sum(v => (double)v * v);
        double noise = reference.Zip(stream, (a, b) => ((double)a - b) * (a - b)).Sum();
        return 10 * Math.Log10(signal / Math.Max(noise, 1e-30));
    }
}
