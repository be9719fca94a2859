using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MiniOmni.SK.Audio;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Gguf;
using MiniOmni.SK.Native;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK.Engine;

/// <summary>How a loaded Mini-Omni model runs.</summary>
public sealed record MiniOmniEngineOptions
{
    /// <summary>
    /// KV cache positions shared by the active answers (a batch-parallel answer uses two sequences). Each answer reserves
    /// its prompt and then slices of what it goes on to use, not its whole budget; when the cache is full, an answer
    /// waits for room, and if all do, the latest ends. 8192 positions of the f16 cache take about 100 MB.
    /// </summary>
    public uint ContextSize { get; init; } = 8192;

    /// <summary>
    /// The budget of an answer whose request sets none (<see cref="MiniOmniRequest.MaxTokens"/> 0), in steps (about 12 a
    /// second of speech); the model's context bounds it too. The release's spoken answers run a few hundred steps.
    /// </summary>
    public int DefaultMaxTokens { get; init; } = 1024;

    /// <summary>How the steps of several answers are grouped into llama.cpp decodes; by default as measured at load.</summary>
    public StepDecodePolicy StepDecodePolicy { get; init; } = StepDecodePolicy.Measured;

    /// <summary>How the text head is held: null follows the model type (see <see cref="ModelFileTypes.TextHeadType"/>).</summary>
    internal GgmlType? TextHeadType { get; init; }

    /// <summary>How long a new answer's prompt may hold up the others' next step (its prompt is decoded in slices).</summary>
    internal TimeSpan MaxPrefillPause { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Linux only: the nice value (1 to 19) of the engine's compute threads (the decode loop, the encoder and the OpenMP
    /// workers they start), so that the application's own threads (a server's I/O, health checks, other sessions' audio)
    /// get the cores first whenever they have work, while the engine gets every cycle they leave; 0 (the default) leaves
    /// them at normal priority. The application's thread pool keeps its own priority.
    /// </summary>
    public int ComputeNiceness { get; init; }

    /// <summary>CPU threads for every stage; null uses every core.</summary>
    public int? Threads { get; init; }

    /// <summary>CPU threads of the speech decoder, which runs between the backbone's steps; null uses <see cref="Threads"/>.</summary>
    public int? CodecThreads { get; init; }

    /// <summary>Use a GPU when the installed LLamaSharp backend has one.</summary>
    public bool UseGpu { get; init; } = true;

    /// <summary>An f32 KV cache: closest to the reference, slower and twice the memory. The default is f16.</summary>
    public bool FullPrecisionCache { get; init; }

    /// <summary>
    /// Cache positions kept for later prompts that start as earlier ones did (0: none kept). When an answer ends, its
    /// preamble (instructions, earlier turns) stays in the cache, keyed by its tokens: the next turn of the conversation,
    /// whose preamble extends it, decodes only what is new. Least recently used prefixes go first, when this is exceeded or
    /// when answers need the cells. Null (the default) keeps up to a quarter of <see cref="ContextSize"/>; at most all of it.
    /// </summary>
    public uint? PromptCacheSize { get; init; }

    /// <summary>Answers decoded together, one llama.cpp decode per step for all of them; later requests wait their turn (1 to 128).</summary>
    public int MaxConcurrentAnswers { get; init; } = 4;

    /// <summary>The most answers decoded together: each takes two of llama.cpp's 256 sequences.</summary>
    public const int MaxConcurrentAnswersLimit = 128;

    /// <summary>Checks every option's range; an engine validates its options before it loads anything.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range, named in the message.</exception>
    public void Validate()
    {
        if (ContextSize is 0 or > ModelFiles.ModelLimits.MaxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(ContextSize), ContextSize, $"The cache holds 1 to {ModelFiles.ModelLimits.MaxContext} positions.");
        }

        if (PromptCacheSize > ContextSize)
        {
            throw new ArgumentOutOfRangeException(nameof(PromptCacheSize), PromptCacheSize, $"The prompt cache keeps at most the whole cache ({ContextSize} positions).");
        }

        if (DefaultMaxTokens <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(DefaultMaxTokens), DefaultMaxTokens, "The default budget must be at least one step.");
        }

        if (MaxConcurrentAnswers is <= 0 or > MaxConcurrentAnswersLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrentAnswers), MaxConcurrentAnswers, $"Between 1 and {MaxConcurrentAnswersLimit} answers can be decoded together.");
        }

        if (Threads is <= 0 or > MaxThreads)
        {
            throw new ArgumentOutOfRangeException(nameof(Threads), Threads, $"Threads are null (every core) or 1 to {MaxThreads}.");
        }

        if (ComputeNiceness is < 0 or > ComputeThreadPriority.MaxNiceness)
        {
            throw new ArgumentOutOfRangeException(nameof(ComputeNiceness), ComputeNiceness, $"The compute threads' nice value is 0 (normal priority) to {ComputeThreadPriority.MaxNiceness}.");
        }

        if (CodecThreads is <= 0 or > MaxThreads)
        {
            throw new ArgumentOutOfRangeException(nameof(CodecThreads), CodecThreads, $"Codec threads are null (as Threads) or 1 to {MaxThreads}.");
        }
    }

    // ggml's GGML_MAX_N_THREADS.
    private const int MaxThreads = 512;
}

/// <summary>One question to Mini-Omni.</summary>
public sealed record MiniOmniRequest
{
    /// <summary>What to do: speech or text in, text or text and speech out, or a text read aloud.</summary>
    public MiniOmniTask Task { get; init; } = MiniOmniTask.A1A2;

    /// <summary>16 kHz mono speech, for the speech-in tasks.</summary>
    public ReadOnlyMemory<float> Audio { get; init; }

    /// <summary>The question as text, for the text-in tasks; the text to speak, for <see cref="MiniOmniTask.ReadAloud"/>.</summary>
    public string? Text { get; init; }

    /// <summary>
    /// Plain text placed on the text stream ahead of the release's prompt (instructions, earlier turns), tokenized as text:
    /// special tokens written in it (ChatML's <c>&lt;|im_start|&gt;</c>) stay literal characters. The release is single-turn
    /// and has no such seam; null or empty gives exactly its prompts. For a chat template's markers use <see cref="PreambleSegments"/>.
    /// </summary>
    public string? Preamble { get; init; }

    /// <summary>
    /// The preamble as a chat template renders it: <see cref="PreambleSegment.Text"/> segments are tokenized as plain text,
    /// <see cref="PreambleSegment.Marker"/> segments are each one of the model's special tokens. So nothing a user writes can
    /// become a marker. Use this or <see cref="Preamble"/>, not both.
    /// </summary>
    public IReadOnlyList<PreambleSegment>? PreambleSegments { get; init; }

    /// <summary>
    /// Text the answer must begin with: fed to its text stream (tokenized as plain text) before the text head is sampled, for
    /// the tasks that write text. How a required tool call is made to start; null or empty leaves the answer free.
    /// </summary>
    public string? AnswerPrefix { get; init; }

    /// <summary>
    /// For <see cref="MiniOmniTask.ReadAloud"/>: the text to speak as it is being written (a thinker's stream), in chunks
    /// cut anywhere (inside words, inside multi-byte characters). Each token goes to the answer's text stream as soon as
    /// the text after it shows where it ends, speech starts with the first words, and where the text runs dry the answer
    /// waits for more. The tokens spoken are exactly those of the whole text. <see cref="Text"/> is then the question the
    /// answer is to (the prompt's text, as a whole read-aloud text is its own question). Stopping the answer (cancellation,
    /// a budget, the voice's end) stops reading the stream; an error of the stream ends the answer with that error.
    /// </summary>
    public IAsyncEnumerable<string>? AnswerText { get; init; }

    /// <summary>Run the text-only "thinking" row beside the speaking one (A1A2 only), as the release's batch-parallel mode.</summary>
    public bool BatchParallel { get; init; }

    /// <summary>How each head picks its token; greedy by default, as the release decodes.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>
    /// The most steps of the answer (one text token and one audio frame each); 0 takes the engine's
    /// <see cref="MiniOmniEngineOptions.DefaultMaxTokens"/>, within what the model's context allows. Negative values are refused.
    /// A <see cref="MiniOmniTask.ReadAloud"/> request has a budget of its own, proportional to its text
    /// (<see cref="MiniOmniEngine.ReadAloudSteps"/>); a smaller MaxTokens lowers it.
    /// </summary>
    public int MaxTokens { get; init; }

    /// <summary>
    /// A host's bound on the answer's steps, whatever <see cref="MaxTokens"/> says: it lowers the default budget, the
    /// read-aloud budget and an explicit one alike, and an answer it cuts ends for its budget. 0 (the default) sets none.
    /// A server holds every request to its limit this way without turning an unbudgeted request into one that cannot fit
    /// the model's context. Negative values are refused.
    /// </summary>
    public int MaxTokensCap { get; init; }

    /// <summary>How much of Whisper's window to encode.</summary>
    public EncoderMode EncoderMode { get; init; } = EncoderMode.Exact;

    /// <summary>
    /// For an answer to speech (A1A2, A1T2): the question's transcript, decoded beside the answer from the same encoding
    /// (see <see cref="QuestionTranscription"/>); null for none.
    /// </summary>
    public QuestionTranscription? Transcription { get; init; }

    /// <summary>
    /// Who the preamble kept in the prompt cache after this answer belongs to (a realtime session), or null: the owner's
    /// kept preambles are freed when it ends (<see cref="IPromptCacheOwners.ForgetAsync"/>) instead of waiting to be evicted.
    /// </summary>
    internal object? CacheOwner { get; init; }
}

/// <summary>
/// An engine whose prompt cache keeps preambles for their owners (a realtime session's history): decoded ahead of the
/// turn that will start with them, and freed when the owner ends.
/// </summary>
internal interface IPromptCacheOwners
{
    /// <summary>Frees the kept preambles that only <paramref name="owner"/> used; returns how many were freed.</summary>
    Task<int> ForgetAsync(object owner);

    /// <summary>
    /// Decodes <paramref name="preamble"/> into the prompt cache for <paramref name="owner"/>, ahead of the request that
    /// will start with it; see <see cref="MiniOmniEngine.PrefillPreambleAsync(MiniOmniRequest, CancellationToken)"/>.
    /// </summary>
    Task PrefillPreambleAsync(string preamble, object owner, CancellationToken cancellationToken);
}

/// <summary>One piece of a <see cref="MiniOmniRequest.PreambleSegments"/> preamble: plain text, or one special token of the model.</summary>
public readonly record struct PreambleSegment
{
    private PreambleSegment(string value, bool isMarker)
    {
        Value = value;
        IsMarker = isMarker;
    }

    /// <summary>The text, or the special token's name (e.g. <c>&lt;|im_start|&gt;</c>).</summary>
    public string Value { get; }

    /// <summary>Whether the segment is a special token rather than text.</summary>
    public bool IsMarker { get; }

    /// <summary>Text, tokenized as text: whatever it contains, it never becomes a special token.</summary>
    public static PreambleSegment Text(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), isMarker: false);

    /// <summary>One special token of the model's vocabulary by its name (e.g. <c>&lt;|im_end|&gt;</c>); anything else is refused when the request runs.</summary>
    public static PreambleSegment Marker(string specialToken) =>
        new(string.IsNullOrEmpty(specialToken) ? throw new ArgumentException("A marker names one special token.", nameof(specialToken)) : specialToken, isMarker: true);

    /// <summary>The segments written out as one string, markers included: for display and tests, never for tokenizing.</summary>
    public static string Concat(IEnumerable<PreambleSegment> segments) => string.Concat(segments.Select(s => s.Value));

    /// <inheritdoc />
    public override string ToString() => Value ?? "";
}

/// <summary>A request's prompt plus its answer budget do not fit the model's context or the engine's cache.</summary>
public sealed class ContextOverflowException : ArgumentException
{
    /// <summary>Creates the exception for a prompt of <paramref name="promptPositions"/> and a budget of <paramref name="steps"/>.</summary>
    public ContextOverflowException(string message, int promptPositions, int steps, Exception? innerException = null)
        : base(message, "request", innerException)
    {
        PromptPositions = promptPositions;
        Steps = steps;
    }

    /// <summary>Positions of the prompt (preamble included).</summary>
    public int PromptPositions { get; }

    /// <summary>The answer's budget in steps.</summary>
    public int Steps { get; }
}

/// <summary>Something an answer produced.</summary>
public abstract record MiniOmniEvent;

/// <summary>New text of the answer (whole UTF-8 characters only).</summary>
public sealed record TextDelta(string Text) : MiniOmniEvent;

/// <summary>New speech of the answer: 24 kHz mono samples in [-1, 1].</summary>
public sealed record SpeechChunk(float[] Samples, int SampleRate) : MiniOmniEvent;

/// <summary>Why an answer ended.</summary>
public enum AnswerStopReason
{
    /// <summary>The model ended it: EOA for speech, EOT for text.</summary>
    EndOfAnswer,
    /// <summary>It reached its budget: the request's <see cref="MiniOmniRequest.MaxTokens"/>, or a read-aloud budget.</summary>
    Budget,
    /// <summary>It filled the room the model's context left it (no budget was given).</summary>
    Context,
}

/// <summary>The answer ended.</summary>
/// <param name="PromptTokens">Positions of the prompt.</param>
/// <param name="Steps">Steps generated (text tokens, audio frames and pads included).</param>
/// <param name="SpeechSeconds">Seconds of speech produced.</param>
/// <param name="TimeToFirstSpeech">From the request to the first speech chunk, if any.</param>
/// <param name="Elapsed">From the request to the end.</param>
/// <param name="Tokens">The generated streams as the release keeps them: seven audio layers (unshifted) then text.</param>
public sealed record AnswerCompleted(int PromptTokens, int Steps, double SpeechSeconds, TimeSpan? TimeToFirstSpeech, TimeSpan Elapsed, IReadOnlyList<IReadOnlyList<int>> Tokens) : MiniOmniEvent
{
    /// <summary>Why the answer ended: the model ended it, or its budget or the context cut it off.</summary>
    public AnswerStopReason StopReason { get; init; }

    /// <summary>Positions of the prompt that hold the question's audio features (0 for a typed question).</summary>
    public int PromptAudioPositions { get; init; }

    /// <summary>Steps whose text stream holds a text token (the answer's words; its end-of-text and pads not counted).</summary>
    public int TextTokens { get; init; }

    /// <summary>Where the time to the first speech went, stage by stage (for benchmarks and diagnostics).</summary>
    internal AnswerTimeline? Timeline { get; init; }
}

/// <summary>How often each stage of an engine has run since it was loaded.</summary>
/// <param name="ExactEncodes">Questions encoded over Whisper's whole window.</param>
/// <param name="FastEncodes">Questions encoded over their own frames only.</param>
/// <param name="PromptDecodes">Backbone decodes that held a prompt (or a slice of one).</param>
/// <param name="StepDecodes">Backbone decodes of steps alone.</param>
/// <param name="AnswerSteps">Steps delivered to answers, each sampled from the heads.</param>
/// <param name="CodecRuns">Chunks of speech the codec decoded.</param>
internal readonly record struct EngineStageCounts(long ExactEncodes, long FastEncodes, long PromptDecodes, long StepDecodes, long AnswerSteps, long CodecRuns)
{
    /// <summary>Requests that took an encoding started ahead of them (<see cref="IEncodeAhead"/>) instead of encoding.</summary>
    public long EncodesTakenAhead { get; init; }

    /// <summary>Preambles decoded ahead of their requests (<see cref="MiniOmniEngine.PrefillPreambleAsync(MiniOmniRequest, CancellationToken)"/>) that decoded anything.</summary>
    public long PreamblesPrefilledAhead { get; init; }
}

/// <summary>An engine that can encode a question before it is asked (a realtime session's turn, while its speaker pauses).</summary>
internal interface IEncodeAhead
{
    /// <summary>
    /// Starts encoding <paramref name="audio"/> (16 kHz mono) in <paramref name="mode"/>; a request whose audio is the same,
    /// in the same mode, then takes the result instead of encoding again. The few most recent are kept; one not asked for
    /// is dropped in time.
    /// </summary>
    void EncodeAhead(float[] audio, EncoderMode mode);
}

/// <summary>Answers Mini-Omni requests; <see cref="MiniOmniEngine"/> is the local implementation.</summary>
public interface IMiniOmniEngine
{
    /// <summary>The loaded model's name (its directory's name).</summary>
    string ModelId { get; }

    /// <summary>The longest prompt plus answer, in positions, that one request may use.</summary>
    int MaxPositions { get; }

    /// <summary>Answers <paramref name="request"/>, streaming text and speech as they are generated, then an <see cref="AnswerCompleted"/>.</summary>
    /// <exception cref="ArgumentException">The request is invalid or does not fit the model's context; nothing was run.</exception>
    IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, CancellationToken cancellationToken = default);
}

/// <summary>
/// A loaded Mini-Omni: audio in, encoder and adapter, backbone, sampler, delay pattern, codec, audio out. Safe to share:
/// up to <see cref="MiniOmniEngineOptions.MaxConcurrentAnswers"/> answers are decoded together (continuous batching,
/// one backbone decode per step for all of them), the rest wait in arrival order. Each answer has its own sampler,
/// sequences and streaming decoder, and frees its cache when it ends or is cancelled.
/// </summary>
public sealed class MiniOmniEngine : IMiniOmniEngine, IEncodeAhead, IPromptCacheOwners, IDisposable
{
    private readonly Backbone _backbone;
    private readonly GgufFile _vocabularyFile;
    private readonly TextTokenizer _tokenizer;
    private readonly WhisperEncoder _encoder;
    private readonly SnacDecoder _codec;
    private readonly AudioModelParameters _parameters;
    private readonly MiniOmniVocabulary _vocabulary;
    private readonly PromptBuilder _prompts;
    private readonly DecodeScheduler _scheduler;
    private readonly ILogger _logger;
    private readonly string _modelDirectory;
    private readonly int _trainedContext;
    private readonly int _defaultMaxTokens;
    private readonly SemaphoreSlim _encoding = new(1, 1);
    private readonly int _computeNiceness;
    private long _exactEncodes;
    private long _fastEncodes;
    private long _answerSteps;
    private long _codecRuns;
    private long _encodesTakenAhead;
    private long _preamblesPrefilledAhead;
    private readonly List<EncodingAhead> _ahead = [];
    private int _disposed;

    /// <summary>
    /// Test seam: runs each encode on the encoder's thread, given the encode to run (by default it just runs it). A test
    /// wraps it to hold an encode in flight while the engine is disposed.
    /// </summary>
    internal Func<Func<EncodedAudio>, EncodedAudio> RunEncode { get; set; } = encode => encode();

    /// <summary>
    /// Test seam: awaited by an answer after each step that handed out text or speech, before it goes on (null: it goes on
    /// at once). A test holds answers mid-way with it, whatever the model's answers' lengths.
    /// </summary>
    internal Func<Task>? AfterAnswerEvent { get; set; }

    private MiniOmniEngine(ModelDirectory model, MiniOmniEngineOptions options, ILoggerFactory loggers)
    {
        _logger = loggers.CreateLogger<MiniOmniEngine>();
        var compute = new GgmlComputeOptions { Threads = options.Threads, UseGpu = options.UseGpu };
        _defaultMaxTokens = options.DefaultMaxTokens;
        _computeNiceness = options.ComputeNiceness;
        GgmlType? textHeadType = options.TextHeadType;
        // Each stage loaded is disposed again if a later one fails: a failed load leaves nothing native behind.
        var loaded = new Stack<IDisposable>();
        try
        {
            using (var audio = GgufFile.Open(model.AudioPath))
            {
                _parameters = AudioModelParameters.Read(audio);
                textHeadType ??= ModelTypeOf(audio)?.TextHeadType();
                _encoder = Push(loaded, new WhisperEncoder(audio, _parameters, compute, loggers.CreateLogger<WhisperEncoder>()));
                _codec = Push(loaded, new SnacDecoder(audio, _parameters, compute with { Threads = options.CodecThreads ?? options.Threads }, StreamingOptions.Speech.WindowFrames, loggers.CreateLogger<SnacDecoder>()));
            }

            _vocabulary = MiniOmniVocabulary.From(_parameters);
            _vocabularyFile = Push(loaded, GgufFile.Open(model.VocabularyPath));
            _tokenizer = Push(loaded, TextTokenizer.Load(model.VocabularyPath));
            var backboneOptions = new BackboneOptions
            {
                ContextSize = options.ContextSize,
                MaxSequences = (uint)Math.Max(2, 2 * options.MaxConcurrentAnswers),
                // A transcript row beside each answer, and the prompt cache's kept prefixes, within llama.cpp's 256 sequences.
                SideSequences = (uint)Math.Clamp(LlamaMaxSequences - (Math.Max(2, 2 * options.MaxConcurrentAnswers) + 1), 0, options.MaxConcurrentAnswers + KeptPrefixes),
                Threads = options.Threads,
                GpuLayerCount = options.UseGpu ? 999 : 0,
                CacheType = options.FullPrecisionCache ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
                StepDecodePolicy = options.StepDecodePolicy,
            };
            var heads = Push(loaded, new OutputHeads(_vocabularyFile, _vocabulary, compute, (int)backboneOptions.MaxSequences, loggers.CreateLogger<OutputHeads>(), textHeadType));
            TextHeadType = heads.TextHeadType;
            _backbone = Backbone.Load(model.BackbonePath, heads, backboneOptions, loggers.CreateLogger<Backbone>());
            // The backbone owns the heads from here on.
            loaded.Pop();
            loaded.Push(_backbone);
            _trainedContext = (int)_vocabularyFile.GetInteger("qwen2.context_length", 2048);
            _prompts = new PromptBuilder(_vocabulary);
            var scheduling = new DecodeSchedulerOptions
            {
                MaxActiveAnswers = options.MaxConcurrentAnswers,
                MaxPrefillPause = options.MaxPrefillPause,
                ComputeNiceness = options.ComputeNiceness,
                PromptCacheCells = options.PromptCacheSize ?? options.ContextSize / 4,
            };
            _scheduler = Push(loaded, new DecodeScheduler(_backbone, new EmbeddingMix(_vocabularyFile), _vocabulary, scheduling, loggers.CreateLogger<DecodeScheduler>()));
        }
        catch
        {
            while (loaded.TryPop(out var stage))
            {
                stage.Dispose();
            }

            throw;
        }

        _modelDirectory = Path.GetFullPath(model.Path);
        ModelId = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model.Path)));
    }

    // llama.cpp's LLAMA_MAX_SEQ, and the most preambles the prompt cache keeps at once.
    private const int LlamaMaxSequences = 256;
    private const int KeptPrefixes = 16;

    /// <summary>Questions encoded so far (each spoken question once, its transcript beside its answer included).</summary>
    internal long QuestionsEncoded => Interlocked.Read(ref _exactEncodes) + Interlocked.Read(ref _fastEncodes);

    private static T Push<T>(Stack<IDisposable> loaded, T stage)
        where T : IDisposable
    {
        loaded.Push(stage);
        return stage;
    }

    /// <inheritdoc />
    public string ModelId { get; }

    /// <summary>The decode scheduler's counters, for benchmarks and diagnostics.</summary>
    internal DecodeStatistics DecodeStatistics => _scheduler.Statistics;

    /// <summary>The decode scheduler, for benchmarks and diagnostics.</summary>
    internal DecodeScheduler Scheduler => _scheduler;

    /// <summary>The model's tokenization of plain text (no special tokens), as read-aloud forces it.</summary>
    internal int[] TokenizeText(string text) => _tokenizer.Tokenize(text);

    /// <summary>How the text head is held.</summary>
    internal GgmlType TextHeadType { get; }

    /// <inheritdoc />
    public int MaxPositions => (int)Math.Min(_trainedContext, _scheduler.UsableCells);

    /// <summary>
    /// Loads the model directory <paramref name="modelDirectory"/> (backbone.gguf, vocabulary.gguf and audio.gguf). The
    /// options are checked first, then every file (<see cref="ModelDirectory.Check"/>), before anything is loaded.
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range; nothing was loaded.</exception>
    /// <exception cref="ModelFiles.ModelFileException">A file is missing, corrupt or inconsistent with the others; the message names the file and the key or tensor.</exception>
    public static MiniOmniEngine Load(string modelDirectory, MiniOmniEngineOptions? options = null, ILoggerFactory? loggers = null)
    {
        options ??= new MiniOmniEngineOptions();
        options.Validate();
        var model = new ModelDirectory(modelDirectory).Check().Directory;
        return new MiniOmniEngine(model, options, loggers ?? NullLoggerFactory.Instance);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<MiniOmniEvent> GenerateAsync(MiniOmniRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        _scheduler.ThrowIfFaulted();
        var prepared = Prepare(request);
        // From here the engine owns the transcript: every path below ends its events.
        if (request.Transcription is { } transcription && !transcription.TryTake())
        {
            throw new ArgumentException("The request's Transcription was used by another request already (or given up); make one per request.", nameof(request));
        }

        var events = Channel.CreateUnbounded<MiniOmniEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        // Cancelled when the caller stops reading for any reason (cancellation, an early break, an error), so the
        // answer leaves the batch at its next step and frees its cache instead of running to its budget unread.
        var answerCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var work = Task.Run(async () =>
        {
            try
            {
                await AnswerAsync(prepared, events.Writer, answerCancellation.Token).ConfigureAwait(false);
                events.Writer.Complete();
            }
            catch (Exception e)
            {
                events.Writer.Complete(e);
            }
        }, CancellationToken.None);

        try
        {
            // A cancelled caller stops here at once, even with events still buffered; the answer itself leaves the batch at its next step.
            await foreach (var item in events.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return item;
            }

            await work.ConfigureAwait(false);
        }
        finally
        {
            answerCancellation.Cancel();
            _ = work.ContinueWith(_ => answerCancellation.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <summary>Steps of the warm-up's dummy answer: the delay pattern's 8 steps, then enough frames for the codec's first chunk.</summary>
    internal const int WarmUpSteps = 24;

    /// <summary>
    /// Runs every stage once, so that the first real request costs what later ones do: waits for the decode costs the
    /// scheduler measures after load (measured while a first request encodes, they would share its cores), then answers a
    /// dummy spoken question (the exact encoder, a prompt, steps, every head, the codec), asks it once more through a
    /// realtime session in the fast mode (the fast encoder, a transcript beside the answer, the realtime path's first use),
    /// and runs the codec on its own if neither answer got to its first frame. A host calls it while
    /// loading, before it says it is ready; a one-shot answer gains nothing from it.
    /// </summary>
    public async Task WarmUpAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var clock = Stopwatch.StartNew();
        while (!_scheduler.CostsMeasured)
        {
            _scheduler.ThrowIfFaulted();
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }

        var measured = clock.Elapsed;
        float[] question = WarmUpQuestion();
        bool spoke = false;
        await foreach (var item in GenerateAsync(new MiniOmniRequest { Task = MiniOmniTask.A1A2, Audio = question, MaxTokens = WarmUpSteps, EncoderMode = EncoderMode.Exact }, cancellationToken).ConfigureAwait(false))
        {
            spoke |= item is SpeechChunk;
        }

        // The same question once more as a realtime client's spoken turn, in the fast mode: the fast encoder, and what the
        // realtime path pays on its first use (RealtimeWarmUp).
        spoke |= await RealtimeWarmUp.RunAsync(this, question, WarmUpSteps, cancellationToken).ConfigureAwait(false);
        if (!spoke)
        {
            // Frames of code 0 are valid codes: one chunk through a decoder of its own, on the scheduler's thread as in an answer.
            await _scheduler.RunBetweenStepsAsync(
                () =>
                {
                    var speech = new StreamingSnacDecoder(_codec, _parameters.SamplesPerFrame, StreamingOptions.Speech);
                    float[] chunk = [];
                    while (chunk.Length == 0)
                    {
                        chunk = speech.Add(new int[_vocabulary.AudioLayerCount]) ? speech.DecodeDueChunk() : [];
                    }

                    return CountCodecRun(chunk);
                },
                cancellationToken).ConfigureAwait(false);
        }

        IsWarmedUp = true;
        _logger.LogInformation("Warmed up in {Seconds:F1} s ({Measuring:F1} s waiting for the decode costs).", clock.Elapsed.TotalSeconds, measured.TotalSeconds);
    }

    /// <summary>The timeline of the latest spoken answer to complete (for benchmarks: what a host's answer spent in the engine).</summary>
    internal AnswerTimeline? LastSpokenTimeline { get; private set; }

    /// <summary>Whether <see cref="WarmUpAsync"/> has run every stage once.</summary>
    public bool IsWarmedUp { get; private set; }

    /// <summary>How often each stage has run since load, for warm-up checks and diagnostics.</summary>
    internal EngineStageCounts StageCounts
    {
        get
        {
            var decodes = _scheduler.Statistics;
            return new EngineStageCounts(
                Interlocked.Read(ref _exactEncodes), Interlocked.Read(ref _fastEncodes), decodes.Decodes - decodes.StepDecodes, decodes.StepDecodes,
                Interlocked.Read(ref _answerSteps), Interlocked.Read(ref _codecRuns)) { EncodesTakenAhead = Interlocked.Read(ref _encodesTakenAhead), PreamblesPrefilledAhead = Interlocked.Read(ref _preamblesPrefilledAhead) };
        }
    }

    /// <inheritdoc />
    Task<int> IPromptCacheOwners.ForgetAsync(object owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        return Volatile.Read(ref _disposed) != 0 ? Task.FromResult(0) : _scheduler.ForgetCacheOwner(owner);
    }

    /// <summary>
    /// Decodes the preamble of <paramref name="request"/> (its <see cref="MiniOmniRequest.Preamble"/> or
    /// <see cref="MiniOmniRequest.PreambleSegments"/>; nothing else of it is used) into the prompt cache, before the request
    /// that starts with it is asked: a conversation's history after an answer, while its speaker is still talking. That
    /// request then decodes only what follows the preamble, and its first audio comes that much sooner. The preamble's
    /// longest start already kept is not decoded again.
    /// </summary>
    /// <remarks>
    /// It yields to answers: it waits while any answer waits to start or runs, so it never delays one. A
    /// preamble the prompt cache cannot keep (<see cref="MiniOmniEngineOptions.PromptCacheSize"/> 0, or a preamble shorter
    /// than the cache's least or longer than its size) is not decoded, and the task completes at once.
    /// </remarks>
    /// <returns>Completes once the preamble is kept.</returns>
    /// <exception cref="ArgumentException">The request has no preamble, or one that does not fit the model's context.</exception>
    /// <exception cref="OperationCanceledException">Cancelled, or it gave its cache cells up to an answer that needed them (nothing is kept).</exception>
    public Task PrefillPreambleAsync(MiniOmniRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return PrefillPreambleAsync(request, request.CacheOwner, cancellationToken);
    }

    /// <inheritdoc />
    Task IPromptCacheOwners.PrefillPreambleAsync(string preamble, object owner, CancellationToken cancellationToken) =>
        PrefillPreambleAsync(new MiniOmniRequest { Preamble = preamble }, owner, cancellationToken);

    private async Task PrefillPreambleAsync(MiniOmniRequest request, object? owner, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        int[] preamble = TokenizePreamble(request) ?? throw new ArgumentException("The request has no preamble to decode ahead (Preamble or PreambleSegments).", nameof(request));
        var prompt = _prompts.ForPreamble(preamble);
        if (prompt.Length >= _trainedContext)
        {
            throw new ContextOverflowException($"A preamble of {prompt.Length} positions leaves no room for a question and an answer: the model's context is {_trainedContext} positions.", prompt.Length, 0);
        }

        var keep = new GenerationRequest(MiniOmniTask.T1T2, prompt, null, [], new SamplingOptions(), MaxSteps: 1) { KeepsPromptOnly = true, CacheOwner = owner, ModelDirectory = _modelDirectory };
        if (await _scheduler.KeepAhead(keep, cancellationToken).ConfigureAwait(false) > 0)
        {
            Interlocked.Increment(ref _preamblesPrefilledAhead);
        }
    }

    /// <summary>Most encodings kept ahead of their requests: a few sessions' pauses at once.</summary>
    internal const int MaxEncodingsAhead = 4;

    /// <inheritdoc />
    void IEncodeAhead.EncodeAhead(float[] audio, EncoderMode mode)
    {
        ArgumentNullException.ThrowIfNull(audio);
        if (audio.Length == 0 || audio.Length > WhisperLogMel.WindowSampleCount || Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        // A failed encoding ahead is not an error of its own: the request then encodes again, and reports it.
        var encoding = EncodeAsync(audio, WhisperLogMel.FeatureFrameCount(audio.Length), mode, CancellationToken.None);
        _ = encoding.ContinueWith(t => _logger.LogDebug(t.Exception, "An encoding ahead failed."), CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        lock (_ahead)
        {
            _ahead.Add(new EncodingAhead(audio, mode, encoding));
            if (_ahead.Count > MaxEncodingsAhead)
            {
                _ahead.RemoveAt(0);
            }
        }
    }

    // The encoding started ahead for exactly this audio in this mode (taken: used once), or null.
    private Task<EncodedAudio>? TakeAhead(float[] audio, EncoderMode mode)
    {
        lock (_ahead)
        {
            int index = _ahead.FindIndex(a => a.Mode == mode && !a.Encoding.IsFaulted && a.Audio.AsSpan().SequenceEqual(audio));
            if (index < 0)
            {
                return null;
            }

            var found = _ahead[index];
            _ahead.RemoveAt(index);
            Interlocked.Increment(ref _encodesTakenAhead);
            return found.Encoding;
        }
    }

    private sealed record EncodingAhead(float[] Audio, EncoderMode Mode, Task<EncodedAudio> Encoding);

    // One second of faint deterministic noise: a question every stage accepts, whatever the weights.
    private static float[] WarmUpQuestion()
    {
        var random = new Random(25);
        return [.. Enumerable.Range(0, WhisperLogMel.SampleRate).Select(_ => (float)(0.01 * (random.NextDouble() - 0.5)))];
    }

    // Encodes on a thread of its own (see DedicatedThread), one question at a time: each encoding thread brings its own
    // OpenMP team, and several at once on a small CPU wait on each other's barriers (four 1.2 s questions arriving
    // together took 3 s to first speech).
    private async Task<EncodedAudio> EncodeAsync(float[] audio, int featureCount, EncoderMode mode, CancellationToken cancellationToken, AnswerTimeline? timeline = null)
    {
        await _encoding.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Dispose takes this gate before it frees the encoder: an encode that was queued behind it finds the engine gone.
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            timeline?.MarkEncoderFree();
            var encoded = await DedicatedThread.RunAsync(
                "MiniOmni encoder",
                () => RunEncode(() =>
                {
                    float[] mel = WhisperLogMel.Compute(audio);
                    timeline?.MarkMelDone();
                    return _encoder.Encode(mel, featureCount, mode);
                }),
                _computeNiceness).ConfigureAwait(false);
            Interlocked.Increment(ref mode == EncoderMode.Exact ? ref _exactEncodes : ref _fastEncodes);
            return encoded;
        }
        finally
        {
            _encoding.Release();
        }
    }

    private float[] CountCodecRun(float[] samples)
    {
        if (samples.Length > 0)
        {
            Interlocked.Increment(ref _codecRuns);
        }

        return samples;
    }

    // The model type the audio file states (written by the conversion), or null for a file without it.
    private static ModelFileType? ModelTypeOf(GgufFile audio) =>
        audio.Metadata.TryGetValue(MiniOmniGgufKeys.FileType, out var type) && type is string name && ModelFileTypes.Names.Contains(name) ? ModelFileTypes.Parse(name) : null;

    /// <inheritdoc />
    public void Dispose()
    {
        // One caller disposes; a second, concurrent or later, returns at once.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _scheduler.Dispose();
        _backbone.Dispose();
        _tokenizer.Dispose();
        _vocabularyFile.Dispose();

        // An encode in flight runs a native graph on a thread of its own and cannot be stopped part-way: wait for it (it
        // holds the encoding gate) before the encoder's weights are freed. Encodes queued behind it then find the engine
        // disposed and never reach the encoder.
        _encoding.Wait();
        try
        {
            _encoder.Dispose();
        }
        finally
        {
            _encoding.Release();
        }

        _codec.Dispose();
    }

    internal sealed record PreparedRequest(MiniOmniRequest Request, GenerationRequest Generation, float[]? Audio, Stopwatch Clock)
    {
        /// <summary>Where the answer's time to first speech goes (its generation request carries the same one to the scheduler).</summary>
        public AnswerTimeline Timeline => Generation.Timeline!;

        /// <summary>The ASR row decoded beside the answer (<see cref="MiniOmniRequest.Transcription"/>), or null.</summary>
        public GenerationRequest? Transcript { get; init; }
    }

    /// <summary>Read-aloud steps per text token: 11.72 frames a second of speech over ~2 tokens a second of slow speech (see README).</summary>
    public const int ReadAloudStepsPerToken = 6;

    /// <summary>Read-aloud steps beyond those per token: the delay pattern's 8 steps before the first frame, and the voice's last second.</summary>
    public const int ReadAloudExtraSteps = 24;

    /// <summary>The budget of a read-aloud answer of <paramref name="textTokens"/> tokens, in steps (audio frames of 85 ms).</summary>
    /// <remarks>
    /// Speech runs at 11.72 frames a second. English read at 150 words a minute is about 3.3 of Qwen2's tokens a second,
    /// so 3.6 frames a token; numbers are a token a digit and take about 4.7. Six frames a token leaves room for speech
    /// 1.6 times slower than that, while a voice that never says EOA is cut off within about twice the expected length.
    /// </remarks>
    public static int ReadAloudSteps(int textTokens) => ReadAloudStepsPerToken * Math.Max(1, textTokens) + ReadAloudExtraSteps;

    // Everything that can be wrong with the request is found here, before the request waits its turn or any work is done.
    internal PreparedRequest Prepare(MiniOmniRequest request)
    {
        var clock = Stopwatch.StartNew();
        request.Sampling.Validate();
        bool speechIn = request.Task is MiniOmniTask.A1A2 or MiniOmniTask.A1T2 or MiniOmniTask.Asr;
        bool readAloud = request.Task == MiniOmniTask.ReadAloud;
        if (request.BatchParallel && request.Task != MiniOmniTask.A1A2)
        {
            throw new ArgumentException($"Batch-parallel answers are for A1A2, not {request.Task}.", nameof(request));
        }

        bool streamedAnswer = request.AnswerText is not null;
        if (streamedAnswer && !readAloud)
        {
            throw new ArgumentException($"A streamed answer text is read aloud (Task ReadAloud), not {request.Task}.", nameof(request));
        }

        int[]? preamble = TokenizePreamble(request);
        TextForcing? forcing = null;
        if (!string.IsNullOrEmpty(request.AnswerPrefix))
        {
            forcing = readAloud || request.BatchParallel
                ? throw new ArgumentException($"An answer prefix is for answers that write their own text, not {(readAloud ? "ReadAloud" : "batch-parallel answers")}.", nameof(request))
                : new TextForcing(_tokenizer.Tokenize(request.AnswerPrefix), EndsText: false);
        }

        Prompt prompt;
        Prompt? thinking = null;
        float[]? audio = null;
        int readAloudBudget = 0;
        if (speechIn)
        {
            if (request.Audio.IsEmpty)
            {
                throw new ArgumentException($"{request.Task} needs speech in; the request has no audio.", nameof(request));
            }

            if (request.Audio.Length > WhisperLogMel.WindowSampleCount)
            {
                throw new ArgumentException($"The question is {request.Audio.Length / 16000.0:F1} s long; Mini-Omni hears at most 30 s.", nameof(request));
            }

            AudioSamples.ThrowIfNotFinite(request.Audio.Span, nameof(request));
            audio = request.Audio.ToArray();
            int frames = WhisperLogMel.FeatureFrameCount(audio.Length);
            (prompt, thinking) = request.BatchParallel ? _prompts.ForBatchParallel(frames, preamble) : (_prompts.ForAudio(request.Task, frames, preamble), null);
        }
        else
        {
            if (string.IsNullOrWhiteSpace(request.Text))
            {
                throw new ArgumentException($"{request.Task} needs {(streamedAnswer ? "the question its streamed answer is to (Text)" : readAloud ? "a text to read aloud" : "a text question")}; the request has none.", nameof(request));
            }

            int[] text = _tokenizer.Tokenize(request.Text);
            if (streamedAnswer)
            {
                // The question as a read-aloud text's prompt; the answer's text comes as it is written.
                prompt = _prompts.ForReadAloud(text, preamble);
            }
            else if (readAloud)
            {
                prompt = _prompts.ForReadAloud(text, preamble);
                forcing = new TextForcing(text, EndsText: true);
                readAloudBudget = ReadAloudSteps(text.Length);
            }
            else
            {
                prompt = _prompts.ForText(request.Task, text, preamble);
            }
        }

        // No budget given: the engine's default, within the model's context and (for the worst case) the cache; the
        // cache is then reserved as the answer goes, not all at once.
        int sequences = thinking is null ? 1 : 2;
        long contextLeft = _trainedContext - (long)prompt.Length;
        long cacheLeft = (_scheduler.UsableCells - prompt.Length) / sequences;
        long maxSteps;
        var limit = AnswerStopReason.Budget;
        if (request.MaxTokensCap < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxTokensCap, $"MaxTokensCap must be 0 (none) or positive; got {request.MaxTokensCap}.");
        }

        if (request.MaxTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxTokens, $"MaxTokens must be 0 (the engine's default budget of {_defaultMaxTokens} steps) or positive; got {request.MaxTokens}.");
        }
        else if (readAloud && !streamedAnswer)
        {
            maxSteps = request.MaxTokens > 0 ? Math.Min(request.MaxTokens, readAloudBudget) : readAloudBudget;
        }
        else if (request.MaxTokens > 0)
        {
            maxSteps = request.MaxTokens;
        }
        else
        {
            maxSteps = Math.Min(_defaultMaxTokens, Math.Min(contextLeft, cacheLeft));
            limit = maxSteps < _defaultMaxTokens ? AnswerStopReason.Context : AnswerStopReason.Budget;
        }

        if (request.MaxTokensCap > 0 && maxSteps > request.MaxTokensCap)
        {
            maxSteps = request.MaxTokensCap;
            limit = AnswerStopReason.Budget;
        }

        // In long arithmetic: a budget near int.MaxValue must not wrap around the checks.
        if (maxSteps <= 0 || maxSteps > contextLeft || prompt.Length + sequences * maxSteps > _scheduler.UsableCells)
        {
            string limits = $"the model's context is {_trainedContext} positions and the cache holds {_scheduler.UsableCells}";
            long room = Math.Max(0, Math.Min(contextLeft, cacheLeft));
            throw new ContextOverflowException(
                room == 0 ? $"A prompt of {prompt.Length} positions ({sequences} sequence(s)) leaves no room for an answer: {limits}; shorten the prompt or raise ContextSize."
                : readAloud && !streamedAnswer ? $"A text of {forcing!.Tokens.Count} tokens to read aloud takes a prompt of {prompt.Length} positions and a budget of {maxSteps} steps, which do not fit: {limits}; split the text (the text-to-speech client splits long text at sentence ends)."
                : $"A prompt of {prompt.Length} positions plus {maxSteps} steps ({sequences} sequence(s)) does not fit: {limits}; lower MaxTokens (at most {room} here) or raise ContextSize.",
                prompt.Length, (int)Math.Clamp(maxSteps, 0, int.MaxValue));
        }

        var generation = new GenerationRequest(request.Task, prompt, thinking, [], request.Sampling, (int)maxSteps) { ForcedText = forcing, StepLimitReason = limit, StreamedText = streamedAnswer ? new StreamedText() : null, ModelDirectory = _modelDirectory, Timeline = new AnswerTimeline(clock), CacheOwner = request.CacheOwner };
        if (generation.Speaks)
        {
            // Its first chunk of speech is due once the delay pattern has given the chunk's frames and their lookahead.
            generation = generation with { SpeechHoldStep = DelayPattern.LayerCount + StreamingOptions.Speech.ChunkFrames + StreamingOptions.Speech.LookaheadFrames };
        }

        return new PreparedRequest(request, generation, audio, clock) { Transcript = PrepareTranscript(request, audio, preamble) };
    }

    // The ASR prompt after the answer's preamble: all but its last position equal the answer's, so they are shared.
    private GenerationRequest? PrepareTranscript(MiniOmniRequest request, float[]? audio, int[]? preamble)
    {
        if (request.Transcription is not { } transcription)
        {
            return null;
        }

        if (audio is null || request.Task == MiniOmniTask.Asr)
        {
            throw new ArgumentException($"A transcript beside the answer is for answers to speech (A1A2, A1T2), not {request.Task}.", nameof(request));
        }

        var prompt = _prompts.ForAudio(MiniOmniTask.Asr, WhisperLogMel.FeatureFrameCount(audio.Length), preamble);
        long room = Math.Min(_trainedContext - (long)prompt.Length, _scheduler.UsableCells - prompt.Length);
        long steps = transcription.MaxTokens > 0 ? transcription.MaxTokens : Math.Min(_defaultMaxTokens, room);
        if (request.MaxTokensCap > 0)
        {
            steps = Math.Min(steps, request.MaxTokensCap);
        }

        if (steps <= 0 || steps > room)
        {
            throw new ContextOverflowException(
                $"The transcript's prompt of {prompt.Length} positions plus {steps} steps does not fit: the model's context is {_trainedContext} positions and the cache holds {_scheduler.UsableCells}; lower the transcription's MaxTokens (at most {Math.Max(0, room)} here).",
                prompt.Length, (int)Math.Clamp(steps, 0, int.MaxValue));
        }

        return new GenerationRequest(MiniOmniTask.Asr, prompt, null, [], new SamplingOptions(), (int)steps) { ModelDirectory = _modelDirectory };
    }

    // A plain preamble is text through and through; a segmented one may hold the template's own markers, each one special token.
    private int[]? TokenizePreamble(MiniOmniRequest request)
    {
        bool plain = !string.IsNullOrEmpty(request.Preamble);
        if (request.PreambleSegments is not { Count: > 0 } segments)
        {
            return plain ? _tokenizer.Tokenize(request.Preamble!) : null;
        }

        if (plain)
        {
            throw new ArgumentException("The request has both a Preamble and PreambleSegments; give one of them.", nameof(request));
        }

        var ids = new List<int>();
        foreach (var segment in segments)
        {
            if (segment.Value is null)
            {
                throw new ArgumentException("A preamble segment is empty (default); make segments with PreambleSegment.Text or PreambleSegment.Marker.", nameof(request));
            }

            if (!segment.IsMarker)
            {
                ids.AddRange(_tokenizer.Tokenize(segment.Value));
                continue;
            }

            // A special token is one id read as special and something else read as text; anything else is not a marker.
            int[] special = _tokenizer.Tokenize(segment.Value, special: true);
            if (special.Length != 1 || _tokenizer.Tokenize(segment.Value).SequenceEqual(special))
            {
                throw new ArgumentException($"The preamble marker '{segment.Value}' is not one special token of the model's vocabulary.", nameof(request));
            }

            ids.Add(special[0]);
        }

        return ids.Count == 0 ? null : [.. ids];
    }

    // Encodes the question, queues the answer with the scheduler, and turns its steps into text and speech as they come.
    // The codec's chunks run on the scheduler's thread between decodes (see DecodeScheduler); the rare encoder on a
    // thread of its own.
    private async Task AnswerAsync(PreparedRequest prepared, ChannelWriter<MiniOmniEvent> events, CancellationToken cancellationToken)
    {
        var request = prepared.Request;
        var generation = prepared.Generation;
        if (generation.StreamedText is { } streamed)
        {
            await AnswerStreamedTextAsync(prepared, generation, streamed, events, cancellationToken).ConfigureAwait(false);
            return;
        }

        var transcription = prepared.Transcript is null ? null : request.Transcription;
        AnswerSteps? steps;
        try
        {
            if (prepared.Audio is { } audio)
            {
                int featureCount = generation.Prompt.AudioFeatureCount;
                // A transcript needs the encoding even if the answer is cancelled meanwhile.
                var encodingCancellation = transcription?.CancellationToken ?? cancellationToken;
                var ahead = TakeAhead(audio, request.EncoderMode);
                var encoded = await (ahead ?? EncodeAsync(audio, featureCount, request.EncoderMode, encodingCancellation, prepared.Timeline)).WaitAsync(encodingCancellation).ConfigureAwait(false);
                prepared.Timeline.MarkEncodeDone(ahead is not null);
                generation = generation with { AudioFeatures = encoded.AdapterOutput };
            }

            // The answer first, so its prompt is decoded first; the transcript then shares all of it but the last position.
            prepared.Timeline.MarkSubmitted();
            steps = cancellationToken.IsCancellationRequested ? null : _scheduler.Submit(generation, cancellationToken);
            if (transcription is not null)
            {
                var transcript = prepared.Transcript! with { AudioFeatures = generation.AudioFeatures };
                var transcriptSteps = _scheduler.SubmitBeside(transcript, steps, steps is null ? 0 : transcript.Prompt.Length - 1, transcription.CancellationToken);
                _ = TranscribeAsync(transcript, transcriptSteps, transcription.Writer, prepared.Clock);
                transcription = null;
            }
        }
        catch (Exception e) when (transcription is not null)
        {
            transcription.Writer.TryComplete(e);
            throw;
        }

        if (steps is null)
        {
            throw new OperationCanceledException(cancellationToken);
        }

        await ConsumeStepsAsync(prepared, generation, steps, events, cancellationToken).ConfigureAwait(false);
    }

    // A streamed read-aloud: a pump tokenizes the text as it comes while the answer steps through it. The answer starts
    // with the first final token (its first step takes it), so a thinker's first words are spoken as soon as they are
    // known. If the text fails, the answer stops and the text's error is the answer's.
    private async Task AnswerStreamedTextAsync(PreparedRequest prepared, GenerationRequest generation, StreamedText streamed, ChannelWriter<MiniOmniEvent> events, CancellationToken cancellationToken)
    {
        using var answering = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        streamed.Changed = _scheduler.Wake;
        var pump = Task.Run(() => PumpAnswerTextAsync(prepared.Request.AnswerText!, streamed, answering), CancellationToken.None);
        // A cancelled answer may be idle, waiting for text: the loop must look at it to let it go.
        using var wake = answering.Token.Register(_scheduler.Wake);
        try
        {
            await streamed.Started.WaitAsync(answering.Token).ConfigureAwait(false);
            if (streamed.Error is null && streamed.Count == 0)
            {
                // The writer wrote nothing: nothing to say.
                events.TryWrite(new AnswerCompleted(generation.Prompt.Length, 0, 0, null, prepared.Clock.Elapsed, [.. Enumerable.Range(0, _vocabulary.AudioLayerCount + 1).Select(_ => (IReadOnlyList<int>)[])]));
                return;
            }

            if (streamed.Error is null)
            {
                await StepAsync(prepared, generation, events, answering.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (streamed.Error is not null && !cancellationToken.IsCancellationRequested)
        {
            // The pump cancelled the answer for the text's error, thrown below.
        }
        finally
        {
            // The answer ended (or failed, or was cancelled): the rest of the text is not wanted, and its writer is stopped.
            answering.Cancel();
            await pump.ConfigureAwait(false);
        }

        if (streamed.Error is { } error)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    // Reads the answer's text to its end, handing out each token as soon as it is final. Never throws: an error of the
    // text (not a cancellation of the answer) is kept on the stream and cancels the answer.
    private async Task PumpAnswerTextAsync(IAsyncEnumerable<string> text, StreamedText streamed, CancellationTokenSource answering)
    {
        var tokenizer = new IncrementalTextTokenizer(chunk => _tokenizer.Tokenize(chunk));
        try
        {
            await foreach (string chunk in text.WithCancellation(answering.Token).ConfigureAwait(false))
            {
                if (!string.IsNullOrEmpty(chunk))
                {
                    streamed.Append(tokenizer.Add(chunk));
                }
            }

            streamed.Append(tokenizer.Finish());
            streamed.End();
        }
        catch (OperationCanceledException) when (answering.IsCancellationRequested)
        {
            streamed.End();
        }
        catch (Exception e)
        {
            _logger.LogDebug(e, "The streamed answer text failed after {Characters} characters.", tokenizer.CharactersSeen);
            streamed.End(e);
            answering.Cancel();
        }
    }

    // Queues the answer with the scheduler and turns its steps into text and speech as they come.
    private Task StepAsync(PreparedRequest prepared, GenerationRequest generation, ChannelWriter<MiniOmniEvent> events, CancellationToken cancellationToken) =>
        ConsumeStepsAsync(prepared, generation, _scheduler.Submit(generation, cancellationToken), events, cancellationToken);

    // Turns an answer's steps into text and speech as they come.
    private async Task ConsumeStepsAsync(PreparedRequest prepared, GenerationRequest generation, AnswerSteps steps, ChannelWriter<MiniOmniEvent> events, CancellationToken cancellationToken)
    {
        var request = prepared.Request;
        bool speaks = generation.Speaks;
        var streams = Enumerable.Range(0, _vocabulary.AudioLayerCount + 1).Select(_ => new List<int>()).ToArray();
        var text = _tokenizer.CreateTextDecoder();
        var speech = speaks ? new StreamingSnacDecoder(_codec, _parameters.SamplesPerFrame, StreamingOptions.Speech) : null;
        // The answer holds after the step that makes a chunk due, until that chunk's codec run (on the scheduler's thread)
        // releases it and says where the next hold is; a cancellation must reach a held answer too.
        var answer = steps.Answer;
        int heldAt = generation.SpeechHoldStep;
        using var wake = cancellationToken.Register(_scheduler.Wake);
        TimeSpan? firstSpeech = null;
        long samples = 0;
        int handedOut = 0;
        void Speak(float[] chunk)
        {
            if (chunk.Length == 0)
            {
                return;
            }

            // The first chunk of speech is checked as the first step is (see AnswerSequence): a codec whose weights hold
            // NaN or Inf speaks noise, never an answer.
            if (firstSpeech is null && AudioSamples.IndexOfNonFinite(chunk) is var bad and >= 0)
            {
                throw new ModelFiles.ModelFileException(
                    _modelDirectory,
                    $"the first chunk of speech holds {chunk[bad]} at sample {bad}: the SNAC decoder's weights in audio.gguf (its codebooks or convolutions) hold NaN or Inf; check them with `miniomni inspect`.",
                    "SNAC decoder output");
            }

            prepared.Timeline.MarkFirstSpeech();
            firstSpeech ??= TimeSpan.FromSeconds(prepared.Timeline.FirstSpeech);
            samples += chunk.Length;
            events.TryWrite(new SpeechChunk(chunk, _parameters.Snac.SampleRate));
            handedOut++;
        }

        await foreach (var step in steps.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            // Steps decoded before the engine was disposed may still be queued: an answer cut short by the dispose ends
            // with ObjectDisposedException, never with a completion (its speech was never decoded).
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            int handedOutBefore = handedOut;
            bool spoke = false;
            Interlocked.Increment(ref _answerSteps);
            for (int layer = 0; layer < step.Audio.Length; layer++)
            {
                streams[layer].Add(step.Audio[layer]);
            }

            streams[^1].Add(step.Text);
            if (step.Text < _vocabulary.Tokens.EndOfText)
            {
                text.Add(step.Text);
                if (text.Read() is { Length: > 0 } delta)
                {
                    events.TryWrite(new TextDelta(delta));
                    handedOut++;
                }
            }

            int frame = streams[0].Count - DelayPattern.LayerCount - 1;
            if (speech is not null && frame >= 0)
            {
                int[] tokens = DelayPattern.Frame(streams, frame);
                // A special token in a frame (the answer is ending) cannot be decoded: the frame is dropped.
                if (tokens.All(code => code < _parameters.Snac.CodebookSize) && speech.Add(tokens))
                {
                    var timeline = prepared.Timeline;
                    timeline.MarkFirstChunkDue(streams[^1].Count);
                    Speak(await _scheduler.RunBetweenStepsAsync(
                        () =>
                        {
                            try
                            {
                                timeline.MarkCodecStarted();
                                int before = speech.EmittedFrames;
                                float[] chunk = CountCodecRun(speech.DecodeDueChunk());
                                if (timeline.FirstChunkFrames == 0)
                                {
                                    timeline.FirstChunkFrames = speech.EmittedFrames - before;
                                    timeline.StepsAtCodecStart = answer.StepsKept;
                                }

                                timeline.MarkCodecDone();
                                return chunk;
                            }
                            finally
                            {
                                heldAt = DelayPattern.LayerCount + speech.FramesForNextChunk;
                                answer.HoldAfterStep(heldAt);
                                answer.ReleaseHold();
                            }
                        },
                        cancellationToken).ConfigureAwait(false));
                    spoke = true;
                }
            }

            if (!spoke && streams[^1].Count == heldAt)
            {
                // The answer holds for a chunk that did not come due (a frame held a special token: the answer is ending).
                heldAt = 0;
                await _scheduler.RunBetweenStepsAsync(
                    () =>
                    {
                        answer.HoldAfterStep(0);
                        answer.ReleaseHold();
                        return 0;
                    },
                    cancellationToken).ConfigureAwait(false);
            }

            if (handedOut > handedOutBefore && AfterAnswerEvent is { } hold)
            {
                await hold().ConfigureAwait(false);
            }
        }

        if (speech is not null)
        {
            Speak(await _scheduler.RunBetweenStepsAsync(() => CountCodecRun(speech.Flush()), cancellationToken).ConfigureAwait(false));
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        var stop = steps.StopReason;
        if (speaks)
        {
            // Before the completion, so a host that has seen its answer complete finds it here.
            LastSpokenTimeline = prepared.Timeline;
        }

        events.TryWrite(new AnswerCompleted(generation.Prompt.Length, streams[^1].Count, samples / (double)_parameters.Snac.SampleRate, firstSpeech, prepared.Clock.Elapsed, streams)
        {
            StopReason = stop,
            PromptAudioPositions = generation.Prompt.AudioFeatureCount,
            TextTokens = streams[^1].Count(token => token < _vocabulary.Tokens.EndOfText),
            Timeline = prepared.Timeline,
        });

        _logger.LogDebug("Answered {Task} in {Steps} steps, {Seconds:F2} s ({Stop}).", request.Task, streams[^1].Count, prepared.Clock.Elapsed.TotalSeconds, stop);
    }

    // A transcript decoded beside its answer: its text as it comes, then its completion, on the transcription's own stream.
    private async Task TranscribeAsync(GenerationRequest transcript, AnswerSteps steps, ChannelWriter<MiniOmniEvent> events, Stopwatch clock)
    {
        try
        {
            var tokens = new List<int>();
            var text = _tokenizer.CreateTextDecoder();
            await foreach (var step in steps.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                tokens.Add(step.Text);
                if (step.Text < _vocabulary.Tokens.EndOfText)
                {
                    text.Add(step.Text);
                    if (text.Read() is { Length: > 0 } delta)
                    {
                        events.TryWrite(new TextDelta(delta));
                    }
                }
            }

            var streams = Enumerable.Range(0, _vocabulary.AudioLayerCount).Select(_ => (IReadOnlyList<int>)[]).Append(tokens).ToArray();
            events.TryWrite(new AnswerCompleted(transcript.Prompt.Length, tokens.Count, 0, null, clock.Elapsed, streams)
            {
                StopReason = steps.StopReason,
                PromptAudioPositions = transcript.Prompt.AudioFeatureCount,
                TextTokens = tokens.Count(token => token < _vocabulary.Tokens.EndOfText),
            });
            events.TryComplete();
        }
        catch (Exception e)
        {
            events.TryComplete(e);
        }
    }
}
