using System.ComponentModel;
using Microsoft.SemanticKernel;

namespace MiniOmni.SK.Samples;

/// <summary>Tells the time.</summary>
public sealed class TimePlugin(TimeProvider clock)
{
    [KernelFunction, Description("The current date and time in UTC, ISO 8601.")]
    public string UtcNow() => clock.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Converts units.</summary>
public sealed class UnitsPlugin
{
    [KernelFunction, Description("Converts a distance in miles to kilometres.")]
    public double MilesToKilometres([Description("distance in miles")] double miles) => Math.Round(miles * 1.609344, 3);

    [KernelFunction, Description("Converts a temperature in degrees Fahrenheit to degrees Celsius.")]
    public double FahrenheitToCelsius([Description("temperature in °F")] double fahrenheit) => Math.Round((fahrenheit - 32) * 5 / 9, 1);
}
