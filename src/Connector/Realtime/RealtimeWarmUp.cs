using Microsoft.Extensions.AI;
using MiniOmni.SK.Audio;
using MiniOmni.SK.Engine;
using MiniOmni.SK.Speech;

namespace MiniOmni.SK;

/// <summary>
/// One spoken turn through a realtime session over the engine, as a client would take it: 24 kHz PCM appended in 100 ms
/// pieces, committed, answered with a transcript beside the answer. Run by <see cref="MiniOmniEngine.WarmUpAsync"/>, so
/// that what the realtime path pays on its first use (its code compiled, the resamplers', the input decoder's and the
/// responder's first run, a session's first answer) is paid while loading, not by a host's first conversation.
/// </summary>
internal static class RealtimeWarmUp
{
    private const int InputRate = 24000;

    /// <summary>Takes one turn of <paramref name="question"/> (16 kHz) in the fast encoder's mode, with at most <paramref name="steps"/> steps.</summary>
    /// <returns>Whether the answer spoke (sent audio).</returns>
    public static async Task<bool> RunAsync(IMiniOmniEngine engine, float[] question, int steps, CancellationToken cancellationToken)
    {
        var client = new MiniOmniRealtimeClient(engine, new MiniOmniRealtimeClientOptions { EncoderMode = EncoderMode.Fast, TranscribeUserSpeech = true, TranscriptionMaxTokens = 4 });
        await using var session = await client.CreateSessionAsync(
            new RealtimeSessionOptions
            {
                InputAudioFormat = new RealtimeAudioFormat("audio/pcm", InputRate),
                VoiceActivityDetection = new VoiceActivityDetectionOptions { Enabled = false },
                MaxOutputTokens = steps,
            },
            cancellationToken).ConfigureAwait(false);
        byte[] pcm = Pcm16Wave.ToPcm16Bytes(new StreamingResampler(WhisperLogMel.SampleRate, InputRate).Resample(question));
        foreach (byte[] piece in pcm.Chunk(InputRate / 10 * 2))
        {
            await session.SendAsync(new InputAudioBufferAppendRealtimeClientMessage(new DataContent(piece, "audio/pcm")), cancellationToken).ConfigureAwait(false);
        }

        await session.SendAsync(new InputAudioBufferCommitRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        await session.SendAsync(new CreateResponseRealtimeClientMessage(), cancellationToken).ConfigureAwait(false);
        bool spoke = false;
        await foreach (var message in session.GetStreamingResponseAsync(cancellationToken).ConfigureAwait(false))
        {
            spoke |= message.Type == RealtimeServerMessageType.OutputAudioDelta;
            if (message.Type == RealtimeServerMessageType.ResponseDone)
            {
                break;
            }

            if (message is ErrorRealtimeServerMessage error)
            {
                throw new InvalidOperationException($"The warm-up's realtime turn failed: {error.Error?.Message}");
            }
        }

        return spoke;
    }
}
