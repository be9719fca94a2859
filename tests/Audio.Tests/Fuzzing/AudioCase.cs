namespace MiniOmni.SK.Audio.Tests.Fuzzing;

/// <summary>How a fuzz case hands its bytes to the decoder: the public entry points users call.</summary>
public enum EntryPoint
{
    /// <summary><see cref="AudioDecoder.Decode(ReadOnlyMemory{byte}, string?, AudioInputOptions?, string?)"/>.</summary>
    Bytes,

    /// <summary><see cref="AudioDecoder.Decode(Stream, string?, AudioInputOptions?, string?)"/> with a seekable stream.</summary>
    SeekableStream,

    /// <summary>The same with a stream that cannot seek (buffered up to the limit).</summary>
    ForwardOnlyStream,

    /// <summary>The same with a forward-only stream and a limit smaller than many inputs.</summary>
    ForwardOnlyStreamSmallLimit,

    /// <summary><see cref="AudioDecoder.DecodeAsync"/> with a forward-only stream.</summary>
    AsyncForwardOnlyStream,
}

/// <summary>One fuzz case: mutated bytes, the media type declared with them, the entry point and the options.</summary>
public sealed record AudioCase(byte[] Bytes, string? MediaType, EntryPoint Entry, bool TruncateToWindow, string Mutations)
{
    /// <summary>The name every case's input goes by, which each error must repeat.</summary>
    public const string InputName = "fuzz-input";

    /// <summary>Allocations one case may make: the 30 s window at 48 kHz stereo, a few times over, and the buffered input.</summary>
    public const long AllocationLimit = 96L * 1024 * 1024;

    /// <summary>Decodes the case through its entry point.</summary>
    public float[] Decode()
    {
        var options = new AudioInputOptions
        {
            TruncateToWindow = TruncateToWindow,
            MaxInputBytes = Entry == EntryPoint.ForwardOnlyStreamSmallLimit ? 4096 : AudioInputOptions.DefaultMaxInputBytes,
        };
        switch (Entry)
        {
            case EntryPoint.Bytes:
                return AudioDecoder.Decode(Bytes, MediaType, options, InputName);
            case EntryPoint.SeekableStream:
                using (var stream = new MemoryStream(Bytes, writable: false))
                {
                    return AudioDecoder.Decode(stream, MediaType, options, InputName);
                }

            case EntryPoint.AsyncForwardOnlyStream:
                using (var stream = new ForwardOnlyStream(Bytes))
                {
                    return AudioDecoder.DecodeAsync(stream, MediaType, options, InputName).GetAwaiter().GetResult();
                }

            default:
                using (var stream = new ForwardOnlyStream(Bytes))
                {
                    return AudioDecoder.Decode(stream, MediaType, options, InputName);
                }
        }
    }

    public override string ToString() =>
        $"{Bytes.Length} bytes as '{MediaType ?? "(none)"}' through {Entry}{(TruncateToWindow ? ", truncating" : "")}: {Mutations}";
}
