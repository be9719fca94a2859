namespace MiniOmni.SK.Audio;

/// <summary>
/// A read-only, seekable view of <c>[offset, offset + length)</c> of another seekable stream, optionally preceded by a few
/// bytes of its own: a decoder given a slice cannot read past the chunk it was meant for, and a prefix lets a reader see the
/// input as the child of a synthetic parent. The underlying stream is left open.
/// </summary>
internal sealed class StreamSlice : Stream
{
    private readonly Stream _source;
    private readonly long _offset;
    private readonly long _length;
    private readonly byte[] _prefix;
    private long _position;

    public StreamSlice(Stream source, long offset, long length, byte[]? prefix = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _source = source;
        _offset = offset;
        _length = length;
        _prefix = prefix ?? [];
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _prefix.Length + _length;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new IOException("An attempt was made to move the position before the beginning of the stream.");
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int total = 0;
        if (_position < _prefix.Length && buffer.Length > 0)
        {
            int fromPrefix = (int)Math.Min(buffer.Length, _prefix.Length - _position);
            _prefix.AsSpan((int)_position, fromPrefix).CopyTo(buffer);
            _position += fromPrefix;
            buffer = buffer[fromPrefix..];
            total = fromPrefix;
        }

        long remaining = Length - _position;
        if (remaining <= 0 || buffer.Length == 0)
        {
            return total;
        }

        _source.Position = _offset + (_position - _prefix.Length);
        int read = _source.Read(buffer[..(int)Math.Min(buffer.Length, remaining)]);
        _position += read;
        return total + read;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => SaturatingAdd(_position, offset),
            _ => SaturatingAdd(Length, offset),
        };
        return _position;
    }

    private static long SaturatingAdd(long a, long b) => b > 0 && a > long.MaxValue - b ? long.MaxValue : a + b;

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
