using MiniOmni.SK.Audio;

namespace MiniOmni.SK.Samples.Tests;

/// <summary>Every sample, run as its command line would run it, against the fixture model.</summary>
public sealed class SampleSmokeTests(ConvertedFixtureModel converted) : IClassFixture<ConvertedFixtureModel>, IDisposable
{
    private readonly Fixture.TemporaryDirectory _output = Fixture.CreateTemporaryDirectory();

    [Fact]
    public async Task VoiceChatAnswersASpokenQuestionIntoAWav()
    {
        string wav = Path.Combine(_output.Path, "voicechat.wav");

        int exit = await VoiceChat.Program.Main(["--model", converted.Model.Path, "--input", Fixture.Question, "--out", wav, "--max-tokens", "40"]);

        Assert.Equal(0, exit);
        Assert.True(AudioDecoder.DecodeFile(wav).Length > 0);
    }

    [Fact]
    public async Task VoiceAgentAnswersWithItsPluginsOffered()
    {
        string wav = Path.Combine(_output.Path, "voiceagent.wav");

        int exit = await VoiceAgent.Program.Main(["--model", converted.Model.Path, "--text", "What time is it?", "--out", wav, "--max-tokens", "30"]);

        Assert.Equal(0, exit);
        Assert.True(File.Exists(wav));
    }

    [Fact]
    public async Task VoiceAgentReadsAnotherModelsAnswerAloud()
    {
        string wav = Path.Combine(_output.Path, "speakwith.wav");
        await using var thinker = new FakeChatCompletionsServer("It is noon. Have a cup of tea.");

        int exit = await VoiceAgent.Program.Main(["--model", converted.Model.Path, "--input", Fixture.Question, "--speak-with", thinker.Endpoint.ToString(), "--speak-with-model", "fake", "--out", wav]);

        Assert.Equal(0, exit);
        // The question was heard by Mini-Omni and sent as text, with the kernel's plugins as tools.
        string request = Assert.Single(thinker.Requests);
        Assert.Contains("\"model\":\"fake\"", request, StringComparison.Ordinal);
        Assert.Contains("Units_MilesToKilometres", request, StringComparison.Ordinal);
        // Two sentences read aloud: each of the fixture's read-aloud answers runs to its budget, so both are in the WAV.
        Assert.True(AudioDecoder.DecodeFile(wav).Length > 0);
    }

    [Fact]
    public async Task AgentFrameworkAgentAnswersInTextAndSpeech()
    {
        string wav = Path.Combine(_output.Path, "agent.wav");
        var printed = new StringWriter();
        var console = Console.Out;
        int exit;
        Console.SetOut(printed);
        try
        {
            exit = await AgentFramework.Program.Main(["--model", converted.Model.Path, "--input", Fixture.Question, "--max-tokens", "30", "--out", wav]);
        }
        finally
        {
            Console.SetOut(console);
        }

        Assert.Equal(0, exit);
        // The agent's answer: its text printed, then its speech written and decodable.
        string[] lines = printed.ToString().Split('\n', StringSplitOptions.TrimEntries);
        int written = Array.IndexOf(lines, $"speech written to {wav}");
        Assert.True(written > 0, $"no 'speech written to' line after the answer's text: {printed}");
        Assert.Contains(lines[..written], line => line.Length > 0);
        var speech = AudioDecoder.DecodeFile(wav);
        Assert.True(speech.Length > 0);
        Assert.Equal(-1, AudioSamples.IndexOfNonFinite(speech));
    }

    [Fact]
    public async Task TranscribeTranscribes()
    {
        int exit = await Transcribe.Program.Main(["--model", converted.Model.Path, "--input", Fixture.Question]);

        Assert.Equal(0, exit);
    }

    [Fact]
    public async Task ASampleWithoutAQuestionOrWithAMissingModelFailsWithAMessage()
    {
        Assert.Equal(2, await VoiceChat.Program.Main(["--model", converted.Model.Path]));
        Assert.Equal(1, await VoiceChat.Program.Main(["--model", Path.Combine(_output.Path, "no-model"), "--text", "hi"]));
    }

    public void Dispose() => _output.Dispose();
}
