using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Speech;

public sealed class SnacDecoderTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    [Theory]
    [InlineData("A1A2")]
    [InlineData("T1A2_0")]
    [InlineData("A1A2_BATCH")]
    public void DecodingTheReferenceTokensGivesTheReferenceWaveform(string task)
    {
        var codes = DelayPattern.Frames(GoldenTasks.AudioLayers(task));
        float[] expected = Fixture.ReadFloats($"{task}.wav.f32");
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: codes.FrameCount);

        float[] speech = decoder.Decode(codes);

        Assert.Equal(expected.Length, speech.Length);
        double maxError = expected.Zip(speech, (a, b) => Math.Abs((double)a - b)).Max();
        output.WriteLine($"{task}: {codes.FrameCount} frames, max |sample - reference| {maxError:E2}, reference rms {Rms(expected):E2}");
        Assert.True(maxError <= 1e-4, $"max abs error {maxError:E2}");
    }

    [Fact]
    public void TheGgmlOpsAGpuRunsInsteadOfTheFusedCpuKernelsGiveTheReferenceWaveformToo()
    {
        var codes = DelayPattern.Frames(GoldenTasks.AudioLayers("A1A2"));
        float[] expected = Fixture.ReadFloats("A1A2.wav.f32");
        using var fused = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: codes.FrameCount);
        using var composed = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: codes.FrameCount, fuseCpuKernels: false);

        float[] speech = composed.Decode(codes);

        double maxError = expected.Zip(speech, (a, b) => Math.Abs((double)a - b)).Max();
        double betweenPaths = fused.Decode(codes).Zip(speech, (a, b) => Math.Abs((double)a - b)).Max();
        output.WriteLine($"composed ops: max |sample - reference| {maxError:E2}, max |fused - composed| {betweenPaths:E2}");
        Assert.True(maxError <= 1e-4, $"max abs error {maxError:E2}");
        Assert.True(betweenPaths <= 1e-4, $"fused and composed differ by {betweenPaths:E2}");
    }

    [Fact]
    public void WindowsDecodedInOneGraphEqualEachDecodedAloneAndTheReference()
    {
        // Three answers' windows of different lengths, as several answers' chunks fall due in one step.
        var answers = new[] { "A1A2", "T1A2_0", "A1A2_BATCH" }.Select(task => DelayPattern.Frames(GoldenTasks.AudioLayers(task))).ToList();
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: answers.Max(c => c.FrameCount));

        var together = decoder.DecodeBatch(answers);

        Assert.Equal(3, together.Length);
        for (int i = 0; i < answers.Count; i++)
        {
            Assert.Equal(decoder.Decode(answers[i]), together[i]);
        }

        float[] expected = Fixture.ReadFloats("T1A2_0.wav.f32");
        Assert.True(expected.Zip(together[1], (a, b) => Math.Abs((double)a - b)).Max() <= 1e-4);
        Assert.Empty(decoder.DecodeBatch([]));
    }

    [Fact]
    public void TheReferenceFourFrameScheduleReproducesItsStreamWithinOneLsb()
    {
        var codes = DelayPattern.Frames(GoldenTasks.AudioLayers("A1A2_BATCH"));
        short[] expected = ReadShorts("A1A2_BATCH.stream.i16");
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: 4);

        // From step 7 on, every fourth step decodes the last complete four frames on their own.
        var stream = new List<short>();
        for (int start = 0; start + 4 <= codes.FrameCount && stream.Count < expected.Length; start += 4)
        {
            stream.AddRange(decoder.Decode(codes.Slice(start, 4)).Select(MiniOmni.SK.Audio.Pcm16Wave.ToPcm16));
        }

        Assert.Equal(expected.Length, stream.Count);
        int worst = expected.Zip(stream, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"4-frame schedule: {stream.Count / 8192} chunks, worst difference {worst} LSB");
        Assert.True(worst <= 1, $"worst difference {worst} LSB");
    }

    [Fact]
    public void QuantizedMatricesStayCloseToTheReferenceWaveform()
    {
        var codes = DelayPattern.Frames(GoldenTasks.AudioLayers("A1A2"));
        float[] expected = Fixture.ReadFloats("A1A2.wav.f32");
        using var file = GgufFile.Open(converted.Model.AudioPath);
        using var decoder = new SnacDecoder(file, AudioModelParameters.Read(file), new GgmlComputeOptions { Threads = 2 }, codes.FrameCount, matrixType: GgmlType.Q8_0);

        float[] speech = decoder.Decode(codes);

        double error = expected.Zip(speech, (a, b) => ((double)a - b) * ((double)a - b)).Sum();
        double signalToError = 10 * Math.Log10(expected.Sum(a => (double)a * a) / error);
        output.WriteLine($"Q8_0 codec matrices: {signalToError:F1} dB against the f32 reference");
        Assert.Equal(GgmlType.Q8_0, decoder.MatrixType);
        Assert.InRange(signalToError, 30, 90); // close to the reference, yet really quantized
    }

    [Theory]
    [InlineData("f32", GgmlType.F32)]
    [InlineData("f16", GgmlType.F32)]
    [InlineData("q8_0", GgmlType.Q8_0)]
    [InlineData("q4_k_m", GgmlType.Q8_0)]
    [InlineData(null, GgmlType.F32)]
    public void TheCodecQuantizesItsMatricesForQuantizedModelTypesOnly(string? fileType, GgmlType expected)
    {
        string path = Path.Combine(Path.GetTempPath(), $"miniomni-filetype-{Guid.NewGuid():N}.gguf");
        try
        {
            var writer = new GgufWriter();
            if (fileType is not null)
            {
                writer.Add(MiniOmniGgufKeys.FileType, fileType);
            }

            writer.WriteTo(path);
            using var file = GgufFile.Open(path);

            Assert.Equal(expected, SnacDecoder.MatrixTypeOf(file));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void NoiseIsSeededAndOffByDefault()
    {
        var codes = DelayPattern.Frames(GoldenTasks.AudioLayers("A1A2")).Slice(0, 4);
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: 4);

        float[] quiet = decoder.Decode(codes);
        float[] noisy = decoder.Decode(codes, noiseSeed: 7);

        Assert.Equal(quiet, decoder.Decode(codes));
        Assert.Equal(noisy, decoder.Decode(codes, noiseSeed: 7));
        Assert.NotEqual(quiet, noisy);
    }

    [Fact]
    public void CodesOutsideTheCodebookAreRefused()
    {
        using var decoder = GoldenTasks.CreateSnacDecoder(converted.Model, maxFrames: 4);
        var frame = new[] { 1, 2, 3, 4, 5, 6, 4097 }; // PAD_A where a code should be

        var error = Assert.Throws<ArgumentException>(() => decoder.Decode(SnacCodes.FromFrames([frame])));

        Assert.Contains("4097", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Decode(SnacCodes.FromFrames([.. Enumerable.Repeat(new[] { 1, 1, 1, 1, 1, 1, 1 }, 5)])));
    }

    private static short[] ReadShorts(string name)
    {
        byte[] bytes = File.ReadAllBytes(Fixture.Expected(name));
        var values = new short[bytes.Length / 2];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    private static double Rms(float[] values) => Math.Sqrt(values.Average(v => (double)v * v));
}
