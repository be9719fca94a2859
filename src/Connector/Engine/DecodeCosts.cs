namespace MiniOmni.SK.Engine;

/// <summary>How the backbone groups the step rows of several answers into llama.cpp decodes.</summary>
public enum StepDecodePolicy
{
    /// <summary>
    /// As the decode costs measured at load say is fastest for this model type on this machine: one decode for all
    /// rows, separate decodes, or decodes padded with throwaway rows up to a size the CPU kernels run faster.
    /// </summary>
    Measured,

    /// <summary>Every step row in one decode.</summary>
    Together,

    /// <summary>Each step row in a decode of its own.</summary>
    Apart,
}

/// <summary>One llama.cpp decode (or product of a head) of a step: <paramref name="Rows"/> answer rows plus <paramref name="Padding"/> throwaway rows.</summary>
internal readonly record struct StepDecode(int Rows, int Padding);

/// <summary>
/// What one backbone decode costs by the number of rows in it, and how a step's rows are best split into decodes.
/// llama.cpp's CPU kernels do not scale smoothly with rows: on x86, a two-row Q8_0 decode can cost more than two one-row
/// decodes, while repacked Q4_0 multiplies four rows at a time (three rows cost more than four). The table is measured
/// at load (<see cref="Backbone.MeasureNextCost"/>); the plan is the cheapest split, each part optionally padded to a size
/// that is cheaper still.
/// </summary>
internal sealed class DecodeCosts
{
    // Small costs per extra decode and per padding row, as fractions of a one-row decode: a split or padding must win
    // clearly, not by the measurement's noise.
    private const double ExtraDecodePenalty = 0.03;
    private const double PaddingPenalty = 0.02;

    private readonly double[] _milliseconds;
    private readonly bool _padding;
    private readonly StepDecode[][] _plans;

    /// <summary>Creates the table from <paramref name="stepMilliseconds"/>[n - 1], the cost of one decode of n single-position rows.</summary>
    /// <param name="stepMilliseconds">Costs of decodes of 1, 2, ... rows.</param>
    /// <param name="promptPositionMilliseconds">The cost of one position of a long prompt decoded at once.</param>
    /// <param name="policy">Whether to plan from the costs, or always together or apart.</param>
    /// <param name="padding">Whether a part may be padded with throwaway rows (for decodes; a product of the heads gains nothing from them).</param>
    public DecodeCosts(IReadOnlyList<double> stepMilliseconds, double promptPositionMilliseconds, StepDecodePolicy policy = StepDecodePolicy.Measured, bool padding = true)
    {
        if (stepMilliseconds.Count == 0 || stepMilliseconds.Any(ms => !(ms > 0) || double.IsInfinity(ms)) || !(promptPositionMilliseconds > 0))
        {
            throw new ArgumentException("Decode costs must be positive and finite, for at least one row.", nameof(stepMilliseconds));
        }

        _milliseconds = [.. stepMilliseconds];
        _padding = padding;
        PromptPositionMilliseconds = promptPositionMilliseconds;
        Policy = policy;
        _plans = new StepDecode[_milliseconds.Length + 1][];
        for (int rows = 0; rows <= _milliseconds.Length; rows++)
        {
            _plans[rows] = policy switch
            {
                StepDecodePolicy.Together => rows == 0 ? [] : [new StepDecode(rows, 0)],
                StepDecodePolicy.Apart => [.. Enumerable.Repeat(new StepDecode(1, 0), rows)],
                _ => Cheapest(rows),
            };
        }
    }

    /// <summary>A table that plans every step as one decode (the costs are nominal), as before costs are measured.</summary>
    public static DecodeCosts Nominal(int maxRows, StepDecodePolicy policy = StepDecodePolicy.Together) =>
        new([.. Enumerable.Range(1, Math.Max(1, maxRows)).Select(rows => 10.0 + rows)], 1.0, policy == StepDecodePolicy.Measured ? StepDecodePolicy.Together : policy);

    /// <summary>How plans are made.</summary>
    public StepDecodePolicy Policy { get; }

    /// <summary>The most rows one step decode was measured for.</summary>
    public int MaxRows => _milliseconds.Length;

    /// <summary>The cost of one position of a long prompt.</summary>
    public double PromptPositionMilliseconds { get; }

    /// <summary>The measured cost of one decode of <paramref name="rows"/> rows (1 to <see cref="MaxRows"/>).</summary>
    public double StepMilliseconds(int rows) => _milliseconds[rows - 1];

    /// <summary>The cost of a plan, by the table.</summary>
    public double CostOf(IEnumerable<StepDecode> plan) => plan.Sum(d => StepMilliseconds(d.Rows + d.Padding));

    /// <summary>The decodes that run <paramref name="rows"/> step rows, in order; beyond <see cref="MaxRows"/>, parts of at most that many.</summary>
    public IReadOnlyList<StepDecode> Plan(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (rows <= MaxRows)
        {
            return _plans[rows];
        }

        var plan = new List<StepDecode>();
        for (; rows > MaxRows; rows -= MaxRows)
        {
            plan.Add(new StepDecode(MaxRows, 0));
        }

        plan.AddRange(_plans[rows]);
        return plan;
    }

    /// <summary>The figures as text, for logs and the benchmark.</summary>
    public override string ToString() =>
        $"{Policy}: {string.Join(", ", _milliseconds.Select((ms, i) => $"{i + 1} row(s) {ms:F1} ms"))}; prompt {PromptPositionMilliseconds:F2} ms a position";

    // Dynamic programming over the first part's size: best[n] = min over g of best[n - g] + (cheapest decode holding g rows).
    private StepDecode[] Cheapest(int rows)
    {
        double unit = _milliseconds[0];
        var best = new double[rows + 1];
        var part = new StepDecode[rows + 1];
        for (int n = 1; n <= rows; n++)
        {
            best[n] = double.PositiveInfinity;
            for (int g = 1; g <= n; g++)
            {
                for (int size = g; size <= (_padding ? _milliseconds.Length : g); size++)
                {
                    double cost = best[n - g] + _milliseconds[size - 1] + (n - g > 0 ? ExtraDecodePenalty * unit : 0) + PaddingPenalty * unit * (size - g);
                    if (cost < best[n])
                    {
                        best[n] = cost;
                        part[n] = new StepDecode(g, size - g);
                    }
                }
            }
        }

        var plan = new List<StepDecode>();
        for (int n = rows; n > 0; n -= part[n].Rows)
        {
            plan.Add(part[n]);
        }

        plan.Reverse();
        return [.. plan];
    }
}
