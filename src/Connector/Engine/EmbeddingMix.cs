using MiniOmni.SK.ModelFiles;
using MiniOmni.SK.ModelFiles.Gguf;

namespace MiniOmni.SK.Engine;

/// <summary>
/// The embedding mix: Mini-Omni's input at each position is the mean of its eight stream rows of the token
/// embedding table (seven audio layers, already shifted, and text). Where the prompt carries audio, the seven
/// audio rows are replaced by that frame's adapter output. Rows are read in place from the vocabulary GGUF.
/// </summary>
internal sealed class EmbeddingMix
{
    /// <summary>Streams per position: seven audio layers then text.</summary>
    public const int StreamCount = 8;

    private readonly GgufFile _file;
    private readonly GgufTensorInfo _tokenEmbeddings;

    /// <summary>Reads <c>token_embd.weight</c> of <paramref name="vocabulary"/> (F32, F16 or Q8_0).</summary>
    public EmbeddingMix(GgufFile vocabulary)
    {
        _file = vocabulary;
        _tokenEmbeddings = vocabulary.GetTensor("token_embd.weight");
        if (_tokenEmbeddings.Dims.Count != 2)
        {
            throw new ModelFileException(vocabulary.Path, $"token embeddings have {_tokenEmbeddings.Dims.Count} dimensions; expected 2.", _tokenEmbeddings.Name);
        }

        if (_tokenEmbeddings.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0))
        {
            throw new ModelFileException(vocabulary.Path, $"token embeddings are {_tokenEmbeddings.Type}; the embedding mix reads F32, F16 or Q8_0 (convert again with MiniOmni.SK).", _tokenEmbeddings.Name);
        }
    }

    /// <summary>The embedding width.</summary>
    public int Width => (int)_tokenEmbeddings.Dims[0];

    /// <summary>The number of embedding rows.</summary>
    public int RowCount => (int)_tokenEmbeddings.Dims[1];

    /// <summary>
    /// Writes the mixed embedding of one position into <paramref name="destination"/>.
    /// <paramref name="ids"/> are the eight stream ids (audio layers shifted, text last);
    /// <paramref name="audioFeature"/>, when not empty, replaces the seven audio rows.
    /// </summary>
    public void Mix(ReadOnlySpan<int> ids, ReadOnlySpan<float> audioFeature, Span<float> destination)
    {
        if (ids.Length != StreamCount)
        {
            throw new ArgumentException($"A position has {StreamCount} stream ids, not {ids.Length}.", nameof(ids));
        }

        if (destination.Length != Width || (!audioFeature.IsEmpty && audioFeature.Length != Width))
        {
            throw new ArgumentException($"Embeddings are {Width} wide; got a destination of {destination.Length} and a feature of {audioFeature.Length}.");
        }

        Span<float> row = Width <= 4096 ? stackalloc float[Width] : new float[Width];
        destination.Clear();
        int firstRowStream = audioFeature.IsEmpty ? 0 : StreamCount - 1;
        for (int stream = firstRowStream; stream < StreamCount; stream++)
        {
            ReadRow(ids[stream], row);
            System.Numerics.Tensors.TensorPrimitives.Add(destination, row, destination);
        }

        if (!audioFeature.IsEmpty)
        {
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(audioFeature, StreamCount - 1, destination, destination);
        }

        System.Numerics.Tensors.TensorPrimitives.Multiply(destination, 1f / StreamCount, destination);
    }

    /// <summary>Mixes a whole prompt: <paramref name="streams"/> is [8][positions]; <paramref name="audioFeatures"/> ([frames x width]) replaces the audio rows of positions <paramref name="firstAudioPosition"/> onwards.</summary>
    public float[] MixPrompt(IReadOnlyList<int[]> streams, ReadOnlySpan<float> audioFeatures = default, int firstAudioPosition = 1)
    {
        if (streams.Count != StreamCount || streams.Any(s => s.Length != streams[0].Length))
        {
            throw new ArgumentException($"A prompt has {StreamCount} streams of one length.", nameof(streams));
        }

        if (audioFeatures.Length % Width != 0)
        {
            throw new ArgumentException($"Audio features must be whole rows of {Width}; got {audioFeatures.Length} values.", nameof(audioFeatures));
        }

        int positions = streams[0].Length;
        int frames = audioFeatures.Length / Width;
        if (frames > 0 && (firstAudioPosition < 0 || firstAudioPosition + frames > positions))
        {
            throw new ArgumentException($"{frames} audio frames from position {firstAudioPosition} do not fit a prompt of {positions} positions.", nameof(audioFeatures));
        }

        var result = new float[positions * Width];
        Span<int> ids = stackalloc int[StreamCount];
        for (int position = 0; position < positions; position++)
        {
            for (int stream = 0; stream < StreamCount; stream++)
            {
                ids[stream] = streams[stream][position];
            }

            int frame = position - firstAudioPosition;
            var feature = frame >= 0 && frame < frames ? audioFeatures.Slice(frame * Width, Width) : default;
            Mix(ids, feature, result.AsSpan(position * Width, Width));
        }

        return result;
    }

    private void ReadRow(int id, Span<float> row)
    {
        if ((uint)id >= (uint)RowCount)
        {
            throw new ArgumentOutOfRangeException(nameof(id), $"Token id {id} is outside the {RowCount} embedding rows.");
        }

        _file.ReadRow(_tokenEmbeddings, id, row);
    }
}
