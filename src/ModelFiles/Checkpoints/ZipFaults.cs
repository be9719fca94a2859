using System.Buffers.Binary;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// Finds the byte at which a zip's directory is broken, for a zip that <see cref="System.IO.Compression.ZipArchive"/>
/// refused to open: its <see cref="InvalidDataException"/> says what is wrong but not where. Walks the same records the
/// archive reads on opening (the end of central directory record, zip64's locator and record, then the central directory's
/// file headers) and returns the first that is missing, out of the file or not what its signature says. Runs only after a
/// refusal, and reads only the file's tail and its central directory.
/// </summary>
internal static class ZipFaults
{
    private const uint EndOfCentralDirectorySignature = 0x06054b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint FileHeaderSignature = 0x02014b50;
    private const int EndOfCentralDirectoryBytes = 22;
    private const int MaxCommentBytes = ushort.MaxValue;
    private const int FileHeaderBytes = 46;

    /// <summary>The largest central directory read here; a torch.save zip's takes about a hundred bytes per tensor.</summary>
    private const long MaxDirectoryBytes = 256L << 20;

    /// <summary>Where in <paramref name="path"/> the zip's directory first goes wrong, and what is there.</summary>
    public static (long Offset, string What) Locate(string path)
    {
        using var file = File.OpenHandle(path);
        long length = RandomAccess.GetLength(file);
        if (length < EndOfCentralDirectoryBytes)
        {
            return (0, $"a {length}-byte file is too short for a zip's end of central directory record");
        }

        // The record is the last thing in the file, followed only by its comment of up to 65535 bytes.
        int tailLength = (int)Math.Min(length, EndOfCentralDirectoryBytes + MaxCommentBytes);
        var tail = new byte[tailLength];
        RandomAccess.Read(file, tail, length - tailLength);
        int found = -1;
        for (int at = tailLength - EndOfCentralDirectoryBytes; at >= 0; at--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(at)) == EndOfCentralDirectorySignature)
            {
                found = at;
                break;
            }
        }

        long end = length - EndOfCentralDirectoryBytes;
        if (found < 0)
        {
            return (end, "no end of central directory record (a zip's last record) is there or in the comment space before it");
        }

        end = length - tailLength + found;
        var record = tail.AsSpan(found);
        long entries = BinaryPrimitives.ReadUInt16LittleEndian(record[10..]);
        long directorySize = BinaryPrimitives.ReadUInt32LittleEndian(record[12..]);
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(record[16..]);
        long directoryBound = end;
        if (entries == ushort.MaxValue || directorySize == uint.MaxValue || directoryOffset == uint.MaxValue)
        {
            // Zip64 (torch.save writes it for large files): a locator just before the record points at a larger record.
            var zip64 = Zip64(file, end, length);
            if (zip64.Fault is { } fault)
            {
                return fault;
            }

            (entries, directorySize, directoryOffset, directoryBound) = (zip64.Entries, zip64.Size, zip64.Offset, zip64.RecordAt);
        }

        if (directoryOffset > directoryBound || directorySize > directoryBound - directoryOffset)
        {
            return (end, $"the end of central directory record places the central directory at byte {directoryOffset} ({directorySize} bytes), past the record itself");
        }

        if (directorySize > MaxDirectoryBytes)
        {
            return (end, $"the end of central directory record declares a central directory of {directorySize} bytes, more than a checkpoint's ({MaxDirectoryBytes} are read)");
        }

        var directory = new byte[directorySize];
        RandomAccess.Read(file, directory, directoryOffset);
        int position = 0;
        for (long entry = 0; entry < entries; entry++)
        {
            if (directory.Length - position < FileHeaderBytes || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(position)) != FileHeaderSignature)
            {
                return (directoryOffset + position, $"central directory file header {entry} of the {entries} the end record declares is not there");
            }

            var header = directory.AsSpan(position);
            long next = (long)position + FileHeaderBytes + BinaryPrimitives.ReadUInt16LittleEndian(header[28..])
                + BinaryPrimitives.ReadUInt16LittleEndian(header[30..]) + BinaryPrimitives.ReadUInt16LittleEndian(header[32..]);
            if (next > directory.Length)
            {
                return (directoryOffset + position, $"central directory file header {entry}'s name, extra field and comment run past the directory's {directorySize} bytes");
            }

            position = (int)next;
        }

        return position != directory.Length
            ? (directoryOffset + position, $"the central directory goes on past the {entries} file headers the end record declares")
            : (end, "the zip's directory records are in place, but a field in them is not one the zip reader accepts (the end of central directory record)");
    }

    private static (long Entries, long Size, long Offset, long RecordAt, (long, string)? Fault) Zip64(Microsoft.Win32.SafeHandles.SafeFileHandle file, long end, long length)
    {
        const int locatorBytes = 20, recordBytes = 56;
        long locatorAt = end - locatorBytes;
        Span<byte> locator = stackalloc byte[locatorBytes];
        if (locatorAt < 0 || RandomAccess.Read(file, locator, locatorAt) != locatorBytes || BinaryPrimitives.ReadUInt32LittleEndian(locator) != Zip64LocatorSignature)
        {
            return (0, 0, 0, 0, (Math.Max(locatorAt, 0), "the end record asks for zip64, but no zip64 locator precedes it"));
        }

        long recordAt = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(locator[8..]), long.MaxValue);
        Span<byte> record = stackalloc byte[recordBytes];
        if (recordAt > length - recordBytes || RandomAccess.Read(file, record, recordAt) != recordBytes || BinaryPrimitives.ReadUInt32LittleEndian(record) != Zip64EndSignature)
        {
            return (0, 0, 0, 0, (locatorAt, $"the zip64 locator points at byte {recordAt}, where no zip64 end of central directory record is"));
        }

        static long Clamp(ulong value) => (long)Math.Min(value, long.MaxValue);
        return (Clamp(BinaryPrimitives.ReadUInt64LittleEndian(record[32..])), Clamp(BinaryPrimitives.ReadUInt64LittleEndian(record[40..])),
            Clamp(BinaryPrimitives.ReadUInt64LittleEndian(record[48..])), recordAt, null);
    }
}
