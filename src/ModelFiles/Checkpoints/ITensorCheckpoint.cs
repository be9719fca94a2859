namespace MiniOmni.SK.ModelFiles.Checkpoints;

/// <summary>A file of named tensors (PyTorch zip or safetensors).</summary>
public interface ITensorCheckpoint : IDisposable
{
    /// <summary>The file's path.</summary>
    string Path { get; }

    /// <summary>Every tensor by name.</summary>
    IReadOnlyDictionary<string, CheckpointTensor> Tensors { get; }

    /// <summary>Non-tensor values stored beside the tensors.</summary>
    IReadOnlyDictionary<string, object?> Metadata { get; }
}

/// <summary>Lookups that name the file and the tensor when something is missing or misshapen.</summary>
public static class TensorCheckpointExtensions
{
    /// <summary>The tensor <paramref name="name"/>, whatever its shape; a missing one is an error naming the file and tensor.</summary>
    public static CheckpointTensor Get(this ITensorCheckpoint checkpoint, string name) =>
        checkpoint.Tensors.TryGetValue(name, out var found) ? found : throw new ModelFileException(checkpoint.Path, "tensor not found.", name);

    /// <summary>The tensor <paramref name="name"/>, checked to have <paramref name="expectedShape"/> (PyTorch order).</summary>
    public static CheckpointTensor Get(this ITensorCheckpoint checkpoint, string name, params long[] expectedShape)
    {
        var tensor = checkpoint.Get(name);
        return tensor.Shape.SequenceEqual(expectedShape)
            ? tensor
            : throw new ModelFileException(checkpoint.Path, $"expected shape [{string.Join(", ", expectedShape)}], found [{string.Join(", ", tensor.Shape)}].", name);
    }

    /// <summary>Opens a PyTorch zip or a safetensors file, told apart by their first bytes.</summary>
    public static ITensorCheckpoint OpenAny(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFileException(path, "file not found.");
        }

        Span<byte> magic = stackalloc byte[2];
        using (var stream = File.OpenRead(path))
        {
            int read = stream.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
            if (read < magic.Length)
            {
                throw new ModelFileException(path, $"the file ends at byte {read}, before the first two bytes that tell a zip checkpoint from safetensors: empty or truncated.") { Offset = read };
            }
        }

        return magic[0] == (byte)'P' && magic[1] == (byte)'K' ? TorchCheckpoint.Open(path) : SafetensorsCheckpoint.Open(path);
    }
}
