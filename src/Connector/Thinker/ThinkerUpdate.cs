using Microsoft.Extensions.AI;
using MiniOmni.SK.Engine;

namespace MiniOmni.SK;

/// <summary>
/// What the thinker said besides its text, passed on as it came: function calls it leaves to the caller, its own function
/// calls and results (an agent's), its usage and finish reason. Its text is not here: that is spoken, and comes as
/// <see cref="TextDelta"/> events as the voice speaks it.
/// </summary>
public sealed record ThinkerUpdate(ChatResponseUpdate Update) : MiniOmniEvent;
