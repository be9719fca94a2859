using MiniOmni.SK.Audio;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;
using Xunit.Abstractions;

namespace MiniOmni.SK.Connector.Tests.Speech;

public sealed class WhisperEncoderTests(ConvertedFixtureModel converted, ITestOutputHelper output) : IClassFixture<ConvertedFixtureModel>
{
    private const int FixtureFrames = 60;

    [Fact]
    public void ExactModeMatchesTheReferenceFeaturesAndAdapterOutput()
    {
        using var encoder = GoldenTasks.CreateEncoder(converted.Model);

        var encoded = encoder.Encode(Fixture.ReadFloats("mel.f32"), FixtureFrames, EncoderMode.Exact);

        double featureError = MaxError(Fixture.ReadFloats("whisper_features.f32"), encoded.WhisperFeatures);
        double adapterError = MaxError(Fixture.ReadFloats("adapter_out.f32"), encoded.AdapterOutput);
        output.WriteLine($"exact: features {featureError:E2}, adapter {adapterError:E2}");
        Assert.True(featureError <= 1e-3, $"features differ by {featureError:E2}");
        Assert.True(adapterError <= 1e-3, $"adapter output differs by {adapterError:E2}");
    }

    [Fact]
    public void FromTheWaveFileThroughTheMelTheFeaturesStillMatch()
    {
        using var encoder = GoldenTasks.CreateEncoder(converted.Model);
        float[] samples = AudioDecoder.DecodeFile(Path.Combine(Fixture.Root, "question.wav"));
        int frames = WhisperLogMel.FeatureFrameCount(samples.Length);

        var encoded = encoder.Encode(WhisperLogMel.Compute(samples), frames);

        Assert.Equal(FixtureFrames, frames);
        Assert.True(MaxError(Fixture.ReadFloats("adapter_out.f32"), encoded.AdapterOutput) <= 1e-3);
    }

    [Fact]
    public void FastModeEncodesOnlyTheAudioAndReportsItsDistanceFromExact()
    {
        using var encoder = GoldenTasks.CreateEncoder(converted.Model);
        float[] mel = Fixture.ReadFloats("mel.f32");

        var exact = encoder.Encode(mel, FixtureFrames, EncoderMode.Exact);
        var fast = encoder.Encode(mel, FixtureFrames, EncoderMode.Fast);

        Assert.Equal(exact.AdapterOutput.Length, fast.AdapterOutput.Length);
        double difference = MaxError(exact.AdapterOutput, fast.AdapterOutput);
        double rms = Math.Sqrt(exact.AdapterOutput.Average(v => (double)v * v));
        output.WriteLine($"fast vs exact on the fixture: max |diff| {difference:E2} (adapter rms {rms:E2})");
        // Attention without the padding frames changes the features, but stays of the same nature.
        Assert.True(difference > 0 && difference < 10 * rms);
    }

    [Fact]
    public void QuantizedWeightsWithFusedAttentionStayCloseToTheReference()
    {
        using var directory = Fixture.CreateTemporaryDirectory();
        var model = MiniOmni.SK.ModelFiles.Conversion.ModelConverter.Convert(ConvertedFixtureModel.Sources, directory.Path, MiniOmni.SK.ModelFiles.Conversion.ModelFileType.Q8_0);
        using var file = GgufFile.Open(model.AudioPath);
        Assert.Equal(GgmlType.Q8_0, file.GetTensor("whisper.encoder.blocks.0.attn.query.weight").Type);
        using var encoder = new WhisperEncoder(file, AudioModelParameters.Read(file), new GgmlComputeOptions { Threads = 2 });

        var encoded = encoder.Encode(Fixture.ReadFloats("mel.f32"), FixtureFrames);

        AssertQuantizedAccuracy(encoded, "q8_0 model");
    }

    [Fact]
    public void TheF32ModelsMatricesQuantizedAtLoadGiveTheSameAccuracyAsAQ8Model()
    {
        using var file = GgufFile.Open(converted.Model.AudioPath);
        using var quantized = new WhisperEncoder(file, AudioModelParameters.Read(file), new GgmlComputeOptions { Threads = 2 }, matrixType: GgmlType.Q8_0);
        using var full = new WhisperEncoder(file, AudioModelParameters.Read(file), new GgmlComputeOptions { Threads = 2 }, matrixType: GgmlType.F32);
        float[] mel = Fixture.ReadFloats("mel.f32");

        AssertQuantizedAccuracy(quantized.Encode(mel, FixtureFrames), "f32 model, q8_0 at load");
        // F32 asked of an f32 file changes nothing: the parity path.
        Assert.True(MaxError(Fixture.ReadFloats("adapter_out.f32"), full.Encode(mel, FixtureFrames).AdapterOutput) <= 1e-5);
    }

    // Issue 25: q8_0 matrices (with fused f16 attention) on the fixture's random weights, measured: features max 4.3e-2
    // (of 3.25; rms error 0.99 % of the features' rms), adapter output max 5.0e-2 (of 1.81; rms 2.9 %), the same whether
    // the conversion or the load quantized them. The tolerances sit just above what was measured.
    private void AssertQuantizedAccuracy(EncodedAudio encoded, string what)
    {
        float[] features = Fixture.ReadFloats("whisper_features.f32"), adapter = Fixture.ReadFloats("adapter_out.f32");
        double featureMax = MaxError(features, encoded.WhisperFeatures), adapterMax = MaxError(adapter, encoded.AdapterOutput);
        double featureRms = RelativeRms(features, encoded.WhisperFeatures), adapterRms = RelativeRms(adapter, encoded.AdapterOutput);
        output.WriteLine($"{what}: features max {featureMax:E2} (of {features.Max(Math.Abs):F2}), rms {featureRms:P2}; adapter max {adapterMax:E2} (of {adapter.Max(Math.Abs):F2}), rms {adapterRms:P2}");
        Assert.True(featureMax <= 5e-2, $"features differ by {featureMax:E2}");
        Assert.True(featureRms <= 0.012, $"features' rms error {featureRms:P2}");
        Assert.True(adapterMax <= 6e-2, $"adapter output differs by {adapterMax:E2}");
        Assert.True(adapterRms <= 0.035, $"adapter output's rms error {adapterRms:P2}");
    }

    private static double RelativeRms(float[] expected, float[] actual) =>
        Math.Sqrt(expected.Zip(actual, (a, b) => ((double)a - b) * (a - b)).Sum() / expected.Sum(v => (double)v * v));

    [Fact]
    public void BadInputsAreRefusedWithTheirSizes()
    {
        using var encoder = GoldenTasks.CreateEncoder(converted.Model);
        Assert.Throws<ArgumentException>(() => encoder.Encode(new float[10], 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(new float[80 * 3000], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.Encode(new float[80 * 3000], 1501));
    }

    private static double MaxError(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        return expected.Zip(actual, (a, b) => Math.Abs((double)a - b)).Max();
    }
}
