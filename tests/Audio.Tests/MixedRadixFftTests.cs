using System.Numerics;

namespace MiniOmni.SK.Audio.Tests;

public sealed class MixedRadixFftTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(12)]
    [InlineData(49)] // a repeated prime beyond the specialised radices
    [InlineData(400)] // Whisper's n_fft: 4 * 4 * 5 * 5
    public void MatchesTheDirectDft(int size)
    {
        var random = new Random(size);
        Complex[] input = [.. Enumerable.Range(0, size).Select(_ => new Complex(random.NextDouble() - 0.5, random.NextDouble() - 0.5))];
        var output = new Complex[size];

        new MixedRadixFft(size).Forward(input, output);

        for (int k = 0; k < size; k++)
        {
            Complex expected = Complex.Zero;
            for (int n = 0; n < size; n++)
            {
                expected += input[n] * Complex.FromPolarCoordinates(1, -2 * Math.PI * k * n / size);
            }

            Assert.True(Complex.Abs(expected - output[k]) < 1e-10, $"bin {k}: {output[k]} vs {expected}");
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(500.0)]
    [InlineData(1000.0)]
    [InlineData(8000.0)]
    public void SlaneyMelScaleRoundTrips(double hz)
    {
        Assert.Equal(hz, MelFilterBank.MelToHz(MelFilterBank.HzToMel(hz)), precision: 9);
    }

    [Fact]
    public void SlaneyMelScaleIsLinearBelowOneKilohertz()
    {
        Assert.Equal(15.0, MelFilterBank.HzToMel(1000), precision: 12);
        Assert.Equal(7.5, MelFilterBank.HzToMel(500), precision: 12);
    }
}
