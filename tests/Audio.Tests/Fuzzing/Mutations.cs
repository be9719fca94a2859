using System.Buffers.Binary;
using CsCheck;

namespace MiniOmni.SK.Audio.Tests.Fuzzing;

/// <summary>A header field of a seed input: where it is, how wide, and in which byte order.</summary>
public readonly record struct Field(int Offset, int Width, bool BigEndian, string Name);

/// <summary>What a fuzz target mutates: valid seed inputs, their structural fields, and the media types to declare.</summary>
public sealed record FuzzTarget(string Name, byte[][] Seeds, Func<byte[], IReadOnlyList<Field>> Fields, string?[] MediaTypes, Action<byte[]>? Repair = null);

/// <summary>One change to an input. Positions are drawn as raw integers and taken modulo the input, so any seed fits.</summary>
public abstract record Mutation
{
    public abstract byte[] Apply(byte[] input, IReadOnlyList<Field> fields);
}

/// <summary>Flips bits anywhere.</summary>
public sealed record BitFlips(int[] Positions) : Mutation
{
    public override byte[] Apply(byte[] input, IReadOnlyList<Field> fields)
    {
        if (input.Length == 0)
        {
            return input;
        }

        foreach (int position in Positions)
        {
            int bit = (int)((uint)position % (uint)(input.Length * 8));
            input[bit / 8] ^= (byte)(1 << (bit % 8));
        }

        return input;
    }
}

/// <summary>Cuts the input short.</summary>
public sealed record Truncate(int At) : Mutation
{
    public override byte[] Apply(byte[] input, IReadOnlyList<Field> fields) => input.Length == 0 ? input : input[..(int)((uint)At % (uint)input.Length)];
}

/// <summary>Sets a header or size field to 0, all ones, the largest positive or most negative value, one off, or anything.</summary>
public sealed record SetField(int FieldIndex, int ValueKind, ulong Random) : Mutation
{
    public override byte[] Apply(byte[] input, IReadOnlyList<Field> fields)
    {
        if (fields.Count == 0)
        {
            return input;
        }

        var field = fields[(int)((uint)FieldIndex % (uint)fields.Count)];
        if (field.Offset + field.Width > input.Length)
        {
            return input;
        }

        var span = input.AsSpan(field.Offset, field.Width);
        ulong current = Read(span, field.BigEndian);
        ulong mask = field.Width == 8 ? ulong.MaxValue : (1UL << (8 * field.Width)) - 1;
        ulong value = (ValueKind % 8) switch
        {
            0 => 0,
            1 => mask,
            2 => mask >> 1,
            3 => (mask >> 1) + 1,
            4 => current + 1,
            5 => current - 1,
            6 => current * 2,
            _ => Random,
        };
        Write(span, value & mask, field.BigEndian);
        return input;
    }

    private static ulong Read(Span<byte> span, bool bigEndian)
    {
        ulong value = 0;
        for (int i = 0; i < span.Length; i++)
        {
            value |= (ulong)span[bigEndian ? span.Length - 1 - i : i] << (8 * i);
        }

        return value;
    }

    private static void Write(Span<byte> span, ulong value, bool bigEndian)
    {
        for (int i = 0; i < span.Length; i++)
        {
            span[bigEndian ? span.Length - 1 - i : i] = (byte)(value >> (8 * i));
        }
    }
}

/// <summary>Copies a region over another place, or deletes a region (a chunk moved, a block lost).</summary>
public sealed record Splice(int From, int Length, int To, bool Delete) : Mutation
{
    public override byte[] Apply(byte[] input, IReadOnlyList<Field> fields)
    {
        if (input.Length < 2)
        {
            return input;
        }

        int from = (int)((uint)From % (uint)input.Length);
        int length = Math.Min((int)((uint)Length % 512) + 1, input.Length - from);
        if (Delete)
        {
            return [.. input[..from], .. input[(from + length)..]];
        }

        int to = (int)((uint)To % (uint)input.Length);
        length = Math.Min(length, input.Length - to);
        input.AsSpan(from, length).ToArray().CopyTo(input, to);
        return input;
    }
}

/// <summary>Replaces the input with random bytes, keeping its first few bytes (its magic) or not.</summary>
public sealed record RandomBytes(byte[] Bytes, int KeepPrefix) : Mutation
{
    public override byte[] Apply(byte[] input, IReadOnlyList<Field> fields)
    {
        int keep = Math.Min(KeepPrefix, input.Length);
        return [.. input[..keep], .. Bytes];
    }
}

/// <summary>The generators of fuzz cases for a target.</summary>
internal static class FuzzCases
{
    private static readonly Gen<Mutation> AnyMutation = Gen.Frequency(
        (4, Gen.Int.Array[1, 8].Select(p => (Mutation)new BitFlips(p))),
        (2, Gen.Int.Select(p => (Mutation)new Truncate(p))),
        (5, Gen.Select(Gen.Int, Gen.Int[0, 7], Gen.ULong, (i, k, r) => (Mutation)new SetField(i, k, r))),
        (2, Gen.Select(Gen.Int, Gen.Int, Gen.Int, Gen.Bool, (f, l, t, d) => (Mutation)new Splice(f, l, t, d))),
        (1, Gen.Select(Gen.Byte.Array[0, 2048], Gen.OneOf(0, 4, 12), (b, k) => (Mutation)new RandomBytes(b, k))));

    /// <summary>Cases for <paramref name="target"/>: a seed, one to three mutations, a declared type, an entry point, the options.</summary>
    public static Gen<AudioCase> For(FuzzTarget target) =>
        from seed in Gen.Int[0, target.Seeds.Length - 1]
        from mutations in AnyMutation.Array[1, 3]
        from mediaType in Gen.OneOf(target.MediaTypes)
        from entry in Gen.Frequency((6, Gen.Const(EntryPoint.Bytes)), (1, Gen.Const(EntryPoint.SeekableStream)), (2, Gen.Const(EntryPoint.ForwardOnlyStream)), (1, Gen.Const(EntryPoint.ForwardOnlyStreamSmallLimit)), (1, Gen.Const(EntryPoint.AsyncForwardOnlyStream)))
        from truncate in Gen.Bool
        from repair in Gen.Int[0, 3]
        select Build(target, seed, mutations, mediaType, entry, truncate, repair != 0);

    private static AudioCase Build(FuzzTarget target, int seed, Mutation[] mutations, string? mediaType, EntryPoint entry, bool truncate, bool repair)
    {
        byte[] bytes = (byte[])target.Seeds[seed].Clone();
        var fields = target.Fields(bytes);
        foreach (var mutation in mutations)
        {
            bytes = mutation.Apply(bytes, fields);
        }

        // Checksums are repaired in three cases of four, so the mutations reach what lies past the check.
        if (repair)
        {
            target.Repair?.Invoke(bytes);
        }

        return new AudioCase(bytes, mediaType, entry, truncate, $"{target.Name} seed {seed}: {string.Join("; ", mutations.Select(Describe))}{(repair && target.Repair is not null ? " (checksums repaired)" : "")}");
    }

    private static string Describe(Mutation mutation) => mutation switch
    {
        BitFlips flips => $"flip bits {string.Join(",", flips.Positions)}",
        RandomBytes random => $"{random.Bytes.Length} random bytes after {random.KeepPrefix} kept",
        _ => mutation.ToString(),
    };

    /// <summary>Reads a little-endian integer field for the field finders.</summary>
    public static uint U32(byte[] bytes, int at) => at + 4 <= bytes.Length ? BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at)) : 0;
}
