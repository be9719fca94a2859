using System.Buffers.Binary;
using System.Text;

namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>
/// Walks a pickle's opcodes before anything is unpickled and refuses every global outside the state-dict allow-list,
/// and every opcode that could build an object some other way (INST, OBJ, NEWOBJ, STACK_GLOBAL, the extension registry).
/// A model file must never make the program construct arbitrary types, so this check runs first and alone; it also
/// bounds how many objects the pickle may build.
/// </summary>
internal static class PickleAllowList
{
    /// <summary>The globals a PyTorch state dict needs, as "module name".</summary>
    public static IReadOnlySet<string> AllowedGlobals { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "collections OrderedDict",
        "torch._utils _rebuild_tensor_v2",
        "torch._utils _rebuild_parameter",
        "torch FloatStorage",
        "torch HalfStorage",
        "torch BFloat16Storage",
    };

    /// <summary>Storage globals that are real PyTorch types but hold data a model of ours never has.</summary>
    private static readonly IReadOnlySet<string> UnsupportedStorages = new HashSet<string>(StringComparer.Ordinal)
    {
        "torch DoubleStorage", "torch LongStorage", "torch IntStorage", "torch ShortStorage", "torch CharStorage",
        "torch ByteStorage", "torch BoolStorage", "torch ComplexFloatStorage", "torch ComplexDoubleStorage",
        "torch QInt8Storage", "torch QUInt8Storage", "torch QInt32Storage", "torch UntypedStorage",
    };

    /// <summary>The most objects (containers, numbers, strings...) a state-dict pickle may build; real ones build a few per tensor.</summary>
    public const int MaxObjects = 1_000_000;

    /// <summary>
    /// Checks <paramref name="pickle"/> and returns the program to unpickle: the same opcodes, with each allow-listed
    /// GLOBAL replaced by a persistent id naming it (see <see cref="ScopedGlobalPrefix"/>). Razorvine keeps the
    /// constructors of GLOBALs in one process-wide table; resolving ours through the persistent-id hook of one
    /// unpickler instead keeps them out of that table, so no other user of Razorvine in the process is affected.
    /// Throws <see cref="ModelFileException"/> naming the first global or opcode that is not allowed, or a pickle that
    /// would build more than <see cref="MaxObjects"/> objects.
    /// </summary>
    public static ScopedPickle CheckAndScope(ReadOnlySpan<byte> pickle, string filePath, string entryName)
    {
        var program = new MemoryStream(pickle.Length + 256);
        var rewrites = new List<ScopedPickle.Rewrite>();
        int at = 0;
        int objects = 0;
        while (at < pickle.Length)
        {
            int start = at;
            byte opcode = pickle[at++];
            switch (opcode)
            {
                case (byte)'.': // STOP
                    program.Write(pickle[start..at]);
                    return new ScopedPickle(program.ToArray(), rewrites);
                case (byte)'c': // GLOBAL: "module\nname\n"
                    string module = Line(pickle, ref at, filePath, entryName);
                    string name = Line(pickle, ref at, filePath, entryName);
                    string global = $"{module} {name}";
                    if (UnsupportedStorages.Contains(global))
                    {
                        throw new ModelFileException(filePath, $"unsupported dtype: storage type {module}.{name}; only float32, float16 and bfloat16 tensors can be read (the GLOBAL at offset {start} of {entryName}).", $"{module}.{name}") { Offset = start };
                    }

                    if (!AllowedGlobals.Contains(global))
                    {
                        throw new ModelFileException(filePath, $"the pickle in {entryName} refers to the global {module}.{name}, which a PyTorch state dict never needs; refusing to load it.", $"{module}.{name}") { Offset = start };
                    }

                    // BINUNICODE "prefix + module name", then BINPERSID: the unpickler's own hook resolves it.
                    byte[] id = Encoding.UTF8.GetBytes(ScopedGlobalPrefix + global);
                    long rewrittenAt = program.Position;
                    program.WriteByte((byte)'X');
                    byte[] length = new byte[4];
                    BinaryPrimitives.WriteInt32LittleEndian(length, id.Length);
                    program.Write(length);
                    program.Write(id);
                    program.WriteByte((byte)'Q');
                    rewrites.Add(new ScopedPickle.Rewrite(rewrittenAt, program.Position, start, at));
                    objects++;
                    break;
                case (byte)'i' or (byte)'o' or 0x81 or 0x92 or 0x93 or 0x82 or 0x83 or 0x84:
                    throw new ModelFileException(filePath, $"the pickle in {entryName} uses opcode 0x{opcode:x2} at offset {at - 1}, which constructs objects outside the allow-list; refusing to load it.", entryName) { Offset = at - 1 };
                default:
                    Skip(opcode, pickle, ref at, filePath, entryName);
                    program.Write(pickle[start..at]);
                    if (BuildsAnObject(opcode))
                    {
                        objects++;
                    }

                    break;
            }

            if (objects > MaxObjects)
            {
                throw new ModelFileException(filePath, $"the pickle in {entryName} builds more than {MaxObjects:N0} objects; a state dict needs a few per tensor. Refusing to load it.", entryName) { Offset = start };
            }
        }

        throw new ModelFileException(filePath, $"the pickle in {entryName} ends without a STOP opcode: truncated or corrupt.", entryName) { Offset = pickle.Length };
    }

    /// <summary>Marks a persistent id that stands for an allow-listed global (followed by "module name").</summary>
    public const string ScopedGlobalPrefix = "miniomni.global:";

    // Opcodes that leave a new object on the stack (PUT, GET, POP and the like only move references).
    private static bool BuildsAnObject(byte opcode) => opcode is not ((byte)'(' or (byte)'0' or (byte)'1' or (byte)'2'
        or (byte)'a' or (byte)'b' or (byte)'e' or (byte)'s' or (byte)'u' or (byte)'p' or (byte)'q' or (byte)'r'
        or (byte)'g' or (byte)'h' or (byte)'j' or 0x80 or 0x94 or 0x95 or 0x90);

    private static void Skip(byte opcode, ReadOnlySpan<byte> pickle, ref int at, string filePath, string entryName)
    {
        switch (opcode)
        {
            // No argument.
            case (byte)'(' or (byte)'0' or (byte)'1' or (byte)'2' or (byte)'N' or (byte)'R' or (byte)']' or (byte)'a'
                or (byte)'b' or (byte)'d' or (byte)'}' or (byte)'e' or (byte)'l' or (byte)')' or (byte)'t' or (byte)'s'
                or (byte)'u' or (byte)'Q' or 0x85 or 0x86 or 0x87 or 0x88 or 0x89 or 0x8f or 0x90 or 0x91 or 0x94 or 0x97 or 0x98:
                return;
            // A newline-terminated argument.
            case (byte)'S' or (byte)'V' or (byte)'P':
                Line(pickle, ref at, filePath, entryName);
                return;
            // Numbers and memo indexes as text: a state dict's are short, and a huge decimal would take quadratic time to parse.
            case (byte)'I' or (byte)'L' or (byte)'F' or (byte)'p' or (byte)'g':
                if (Line(pickle, ref at, filePath, entryName).Length > MaxNumberLength)
                {
                    throw new ModelFileException(filePath, $"the pickle in {entryName} has a number longer than {MaxNumberLength} characters before offset {at}: corrupt.", entryName) { Offset = at };
                }

                return;
            // Fixed-size arguments.
            case (byte)'K' or (byte)'q' or (byte)'h' or 0x80: Advance(1, pickle, ref at, filePath, entryName); return;
            case (byte)'M': Advance(2, pickle, ref at, filePath, entryName); return;
            case (byte)'J' or (byte)'r' or (byte)'j': Advance(4, pickle, ref at, filePath, entryName); return;
            case (byte)'G' or 0x95: Advance(8, pickle, ref at, filePath, entryName); return;
            // Length-prefixed arguments.
            case 0x8a or 0x8b: // LONG1, LONG4
                int bytes = opcode == 0x8a ? Advance1(pickle, ref at, filePath, entryName) : Advance4(pickle, ref at, filePath, entryName);
                if (bytes is < 0 or > MaxNumberLength)
                {
                    throw new ModelFileException(filePath, $"the pickle in {entryName} has a {bytes}-byte integer at offset {at}: corrupt.", entryName) { Offset = at };
                }

                Advance(bytes, pickle, ref at, filePath, entryName);
                return;
            case (byte)'U' or (byte)'C' or 0x8c:
                Advance(1, pickle, ref at, filePath, entryName);
                Advance(pickle[at - 1], pickle, ref at, filePath, entryName);
                return;
            case (byte)'T' or (byte)'X' or (byte)'B':
                Advance(4, pickle, ref at, filePath, entryName);
                Advance(BinaryPrimitives.ReadInt32LittleEndian(pickle[(at - 4)..]), pickle, ref at, filePath, entryName);
                return;
            case 0x8d or 0x8e or 0x96:
                Advance(8, pickle, ref at, filePath, entryName);
                long length = BinaryPrimitives.ReadInt64LittleEndian(pickle[(at - 8)..]);
                Advance(length is < 0 or > int.MaxValue ? -1 : (int)length, pickle, ref at, filePath, entryName);
                return;
            default:
                throw new ModelFileException(filePath, $"the pickle in {entryName} has an unknown opcode 0x{opcode:x2} at offset {at - 1}: corrupt.", entryName) { Offset = at - 1 };
        }
    }

    private const int MaxNumberLength = 64;

    private static int Advance1(ReadOnlySpan<byte> pickle, ref int at, string filePath, string entryName)
    {
        Advance(1, pickle, ref at, filePath, entryName);
        return pickle[at - 1];
    }

    private static int Advance4(ReadOnlySpan<byte> pickle, ref int at, string filePath, string entryName)
    {
        Advance(4, pickle, ref at, filePath, entryName);
        return BinaryPrimitives.ReadInt32LittleEndian(pickle[(at - 4)..]);
    }

    private static void Advance(int count, ReadOnlySpan<byte> pickle, ref int at, string filePath, string entryName)
    {
        if (count < 0 || count > pickle.Length - at)
        {
            throw new ModelFileException(filePath, $"the pickle in {entryName} ends inside an opcode at offset {at}: truncated or corrupt.", entryName) { Offset = at };
        }

        at += count;
    }

    private static string Line(ReadOnlySpan<byte> pickle, ref int at, string filePath, string entryName)
    {
        int end = pickle[at..].IndexOf((byte)'\n');
        if (end < 0)
        {
            throw new ModelFileException(filePath, $"the pickle in {entryName} ends inside a line argument at offset {at}: truncated or corrupt.", entryName) { Offset = at };
        }

        string line = Encoding.UTF8.GetString(pickle.Slice(at, end));
        at += end + 1;
        return line;
    }
}

/// <summary>
/// The program <see cref="PickleAllowList.CheckAndScope"/> hands to the unpickler, and where its rewritten GLOBALs sit, so
/// that a place in the program (where the unpickler stopped) can be named as a byte of the original pickle.
/// </summary>
internal sealed class ScopedPickle(byte[] program, IReadOnlyList<ScopedPickle.Rewrite> rewrites)
{
    /// <summary>The opcodes to unpickle.</summary>
    public byte[] Program { get; } = program;

    /// <summary>The byte of the original pickle that byte <paramref name="programOffset"/> of <see cref="Program"/> came from (a rewritten GLOBAL's start for any byte of its rewrite).</summary>
    public long OriginalOffset(long programOffset)
    {
        long shift = 0;
        foreach (var rewrite in rewrites)
        {
            if (programOffset < rewrite.ProgramStart)
            {
                break;
            }

            if (programOffset < rewrite.ProgramEnd)
            {
                return rewrite.OriginalStart;
            }

            shift = rewrite.OriginalEnd - rewrite.ProgramEnd;
        }

        return programOffset + shift;
    }

    /// <summary>A GLOBAL of the original at [<see cref="OriginalStart"/>, <see cref="OriginalEnd"/>) written as [<see cref="ProgramStart"/>, <see cref="ProgramEnd"/>) of the program.</summary>
    public readonly record struct Rewrite(long ProgramStart, long ProgramEnd, long OriginalStart, long OriginalEnd);
}
