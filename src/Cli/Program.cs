using System.CommandLine;
using MiniOmni.SK.Cli;
using MiniOmni.SK.Cli.Commands;

// llama.cpp's own logging goes through Microsoft.Extensions.Logging like ours (warnings and up unless MINIOMNI_LOG=debug).
LLama.Native.NativeLogConfig.llama_log_set(CommandRunner.Logging.CreateLogger("llama.cpp"));

var root = new RootCommand("miniomni: download, convert, create and inspect Mini-Omni model files for MiniOmni.SK, and run them.");
root.Add(PullCommand.Create());
root.Add(ModelFileCommands.Convert());
root.Add(ModelFileCommands.Synthesize());
root.Add(ModelFileCommands.Inspect());
root.Add(RunCommand.Create());
root.Add(BenchCommand.Create());
root.Add(AccuracyCommand.Create());
root.Add(ServeCommand.Create());
return await CommandRunner.InvokeAsync(root, args);
