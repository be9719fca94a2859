using System.Buffers.Binary;
using CsCheck;

namespace MiniOmni.SK.Tests;

/// <summary>One change to a file's bytes. Positions are taken modulo the length, so one mutation fits any file.</summary>
public abstract record ByteMutation
{
    public abstract byte[] Apply(byte[] input);

    protected static int At(uint position, int length) => length == 0 ? 0 : (int)(position % (uint)length);
}

/// <summary>Flips one bit.</summary>
public sealed record BitFlip(uint Position, int Bit) : ByteMutation
{
    public override byte[] Apply(byte[] input)
    {
        if (input.Length == 0)
        {
            return input;
        }

        byte[] copy = [.. input];
        copy[At(Position, copy.Length)] ^= (byte)(1 << Bit);
        return copy;
    }
}

/// <summary>Cuts the file short.</summary>
public sealed record Truncate(uint Position) : ByteMutation
{
    public override byte[] Apply(byte[] input) => input[..At(Position, input.Length)];
}

/// <summary>Writes an interesting little-endian integer (0, -1, 2^31, 2^63, ...) of 1, 2, 4 or 8 bytes over the file.</summary>
public sealed record Overwrite(uint Position, ulong Value, int Width) : ByteMutation
{
    public override byte[] Apply(byte[] input)
    {
        byte[] copy = [.. input];
        int at = At(Position, copy.Length);
        Span<byte> value = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(value, Value);
        value[..Math.Min(Width, copy.Length - at)].CopyTo(copy.AsSpan(at));
        return copy;
    }
}

/// <summary>Inserts bytes, shifting everything after them.</summary>
public sealed record Insert(uint Position, byte[] Bytes) : ByteMutation
{
    public override byte[] Apply(byte[] input)
    {
        int at = At(Position, input.Length + 1);
        return [.. input[..at], .. Bytes, .. input[at..]];
    }
}

/// <summary>Removes a run of bytes.</summary>
public sealed record Delete(uint Position, int Count) : ByteMutation
{
    public override byte[] Apply(byte[] input)
    {
        int at = At(Position, input.Length);
        int end = Math.Min(input.Length, at + Count);
        return [.. input[..at], .. input[end..]];
    }
}

/// <summary>Copies a run of bytes over another place in the file.</summary>
public sealed record CopyWithin(uint From, uint To, int Count) : ByteMutation
{
    public override byte[] Apply(byte[] input)
    {
        byte[] copy = [.. input];
        int from = At(From, copy.Length), to = At(To, copy.Length);
        int count = Math.Min(Count, Math.Min(copy.Length - from, copy.Length - to));
        Array.Copy(input, from, copy, to, Math.Max(0, count));
        return copy;
    }
}

/// <summary>Generators of byte mutations, biased towards the first 4 KB where headers and tables are.</summary>
public static class ByteMutations
{
    /// <summary>Integers that break size, count and offset arithmetic.</summary>
    public static readonly ulong[] Interesting =
    [
        0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFC8, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
        0x100000000, 1UL << 40, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFF0, 0xFFFFFFFFFFFFFFFF,
    ];

    public static Gen<uint> Position { get; } = Gen.OneOf(Gen.UInt[0, 4095], Gen.UInt[0, 65535], Gen.UInt);

    public static Gen<ByteMutation> One { get; } = Gen.OneOf<ByteMutation>(
        Gen.Select(Position, Gen.Int[0, 7], (p, b) => (ByteMutation)new BitFlip(p, b)),
        Gen.Select(Position, Gen.Int[0, 7], (p, b) => (ByteMutation)new BitFlip(p, b)),
        Position.Select(p => (ByteMutation)new Truncate(p)),
        Gen.Select(Position, Gen.Int[0, Interesting.Length - 1], Gen.OneOf(Gen.Const(1), Gen.Const(2), Gen.Const(4), Gen.Const(8)), (p, v, w) => (ByteMutation)new Overwrite(p, Interesting[v], w)),
        Gen.Select(Position, Gen.Byte.Array[1, 32], (p, b) => (ByteMutation)new Insert(p, b)),
        Gen.Select(Position, Gen.Int[1, 64], (p, c) => (ByteMutation)new Delete(p, c)),
        Gen.Select(Position, Position, Gen.Int[1, 256], (f, t, c) => (ByteMutation)new CopyWithin(f, t, c)));

    /// <summary>One to four mutations, applied in order.</summary>
    public static Gen<ByteMutation[]> Some { get; } = One.Array[1, 4];

    public static byte[] ApplyAll(IEnumerable<ByteMutation> mutations, byte[] input) => mutations.Aggregate(input, (bytes, mutation) => mutation.Apply(bytes));
}
