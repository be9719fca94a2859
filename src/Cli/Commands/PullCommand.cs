using System.CommandLine;
using MiniOmni.SK.ModelFiles.Conversion;
using MiniOmni.SK.ModelFiles.Download;
using Spectre.Console;

namespace MiniOmni.SK.Cli.Commands;

/// <summary>
/// <c>miniomni pull</c>: a model by name from the Hugging Face hub, converted, in the cache. Standard output carries the
/// model directory alone, as its last line, so that <c>dir=$(miniomni pull)</c> works; progress and hints go to
/// standard error.
/// </summary>
internal static class PullCommand
{
    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = "The model.", DefaultValueFactory = _ => ModelStore.DefaultModelName };
        name.AcceptOnlyFromAmong([.. ModelStore.ModelNames]);
        var type = ModelFileCommands.TypeOption();
        var cache = new Option<DirectoryInfo?>("--cache") { Description = "Cache directory (default: MINIOMNI_CACHE, else ~/.cache/miniomni or %LOCALAPPDATA%\\miniomni)." };
        var offline = new Option<bool>("--offline") { Description = "Use only what the cache holds (the commit its ref names); never touch the network (as HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1)." };
        var endpoint = new Option<string?>("--endpoint") { Description = "The hub or a mirror of it (default: HF_ENDPOINT, else https://huggingface.co)." };
        var revision = new Option<string>("--revision") { Description = "Branch, tag or commit of gpt-omni/mini-omni.", DefaultValueFactory = _ => "main" };
        var command = new Command("pull", "Resolve a model's releases on the Hugging Face hub to their commits, download what the cache lacks of them, convert them, and keep both in the cache per commit. "
            + "A token is sent if HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the token file of `hf auth login` holds one.")
        {
            name, type, cache, offline, endpoint, revision,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new ModelStoreOptions
            {
                CacheDirectory = parse.GetValue(cache)?.FullName,
                Endpoint = parse.GetValue(endpoint) is { } address ? ParseEndpoint(address) : null,
                Revision = parse.GetRequiredValue(revision),
                Offline = parse.GetValue(offline) ? true : null,
                FileType = ModelFileTypes.Parse(parse.GetRequiredValue(type)),
                Logger = CommandRunner.Logging.CreateLogger("pull"),
            };
            string model = parse.GetRequiredValue(name);
            var messages = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            var directory = await ConsoleProgress.RunAsync($"Pulling {model} ({options.FileType.ToName()}) at '{options.Revision}'", (download, conversion) =>
                ModelStore.EnsureModelAsync(model, options, download, conversion, cancellationToken), messages).ConfigureAwait(false);
            // Plain, never wrapped to the console's width: the hint is meant to be copied.
            Console.Error.WriteLine($"Next: miniomni run --model \"{directory.Path}\" --input question.wav --out-wav answer.wav");
            Console.Out.WriteLine(directory.Path);
        });
        return command;
    }

    private static Uri ParseEndpoint(string address) =>
        Uri.TryCreate(address, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? uri
            : throw new ArgumentException($"--endpoint '{address}' is not an http(s) address such as https://huggingface.co.");
}
