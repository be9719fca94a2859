// Mini-Omni's voice page: the microphone goes to /v1/realtime as PCM16 (OpenAI's Realtime events), the answer's speech
// is played as it streams, and the transcript grows as both sides talk. No build step, no dependencies.
const rate = 24000;
const $ = (id) => document.getElementById(id);
const ui = {
  start: $("start"), talk: $("talk"), stop: $("stop"), key: $("api-key"), status: $("status"),
  level: $("level"), ttfa: $("ttfa"), heard: $("audio-seconds"), transcript: $("transcript"),
};

let socket, context, microphone, capture, playhead = 0, playing = [], heardSamples = 0;
let talking = false, turnEndedAt = null, firstAudioSeen = false;
const turns = new Map(); // item id -> element

const handsFree = () => document.querySelector("input[name=mode]:checked").value === "hands-free";

function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
}

function bubble(id, role, text = "") {
  let turn = turns.get(id);
  if (!turn) {
    turn = document.createElement("div");
    turn.className = `turn ${role}`;
    turn.dataset.role = role;
    turn.innerHTML = `<span class="who">${role === "user" ? "You" : role === "assistant" ? "Mini-Omni" : "Error"}</span><span class="text"></span>`;
    ui.transcript.append(turn);
    if (id) turns.set(id, turn);
  }
  if (text) turn.querySelector(".text").textContent = text;
  turn.scrollIntoView({ block: "end" });
  return turn;
}

function append(id, role, delta) {
  const turn = bubble(id, role);
  turn.querySelector(".text").textContent += delta;
}

function send(event) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(event));
}

function base64(bytes) {
  let binary = "";
  const view = new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(binary);
}

function play(b64) {
  const binary = atob(b64);
  const samples = new Float32Array(binary.length / 2);
  for (let i = 0; i < samples.length; i++) {
    const v = binary.charCodeAt(2 * i) | (binary.charCodeAt(2 * i + 1) << 8);
    samples[i] = (v >= 0x8000 ? v - 0x10000 : v) / 0x8000;
  }
  const buffer = context.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples, 0);
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  playhead = Math.max(playhead, context.currentTime + 0.05);
  source.start(playhead);
  playhead += buffer.duration;
  playing.push(source);
  source.onended = () => { playing = playing.filter((s) => s !== source); };
  heardSamples += samples.length;
  ui.heard.textContent = `${(heardSamples / rate).toFixed(1)} s`;
  ui.heard.dataset.hasAudio = "true";
}

// Barge-in: what is still queued for the speakers is dropped at once.
function silence() {
  for (const source of playing) { try { source.stop(); } catch { /* already ended */ } }
  playing = [];
  playhead = 0;
}

function sessionUpdate() {
  send({
    type: "session.update",
    session: {
      type: "realtime",
      output_modalities: ["audio"],
      audio: {
        input: {
          format: { type: "audio/pcm", rate },
          turn_detection: handsFree() ? { type: "server_vad", silence_duration_ms: 500, create_response: true, interrupt_response: true } : null,
        },
        output: { format: { type: "audio/pcm", rate } },
      },
    },
  });
}

function onEvent(event) {
  switch (event.type) {
    case "session.created":
      sessionUpdate();
      break;
    case "session.updated":
      setStatus(handsFree() ? "Listening – just talk" : "Ready – hold the button to talk", "listening");
      break;
    case "input_audio_buffer.speech_started":
      silence();
      setStatus("Hearing you…", "listening");
      break;
    case "input_audio_buffer.speech_stopped":
      turnEndedAt = performance.now();
      firstAudioSeen = false;
      break;
    case "conversation.item.added":
      if (event.item.role === "user") bubble(event.item.id, "user", event.item.content.some((c) => c.type === "input_audio") ? "(speaking…)" : "");
      break;
    case "conversation.item.input_audio_transcription.completed":
      bubble(event.item_id, "user", event.transcript || "(speech)");
      break;
    case "response.output_item.added":
      bubble(event.item.id, "assistant");
      setStatus("Answering…", "speaking");
      break;
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta":
      append(event.item_id, "assistant", event.delta);
      break;
    case "response.output_audio.delta":
      if (!firstAudioSeen && turnEndedAt !== null) {
        ui.ttfa.textContent = `${((performance.now() - turnEndedAt) / 1000).toFixed(2)} s`;
      }
      firstAudioSeen = true;
      play(event.delta);
      break;
    case "conversation.item.truncated":
      turns.get(event.item_id)?.classList.add("interrupted");
      break;
    case "response.done":
      setStatus(handsFree() ? "Listening – just talk" : "Ready – hold the button to talk", "listening");
      break;
    case "error":
      bubble(null, "error", event.error.message);
      break;
  }
}

async function start() {
  ui.start.disabled = true;
  setStatus("Connecting…", "idle");
  context = new AudioContext({ sampleRate: rate });
  await context.audioWorklet.addModule("pcm-worklet.js");
  const protocols = ["realtime"];
  const key = await ephemeralKey(ui.key.value.trim());
  if (key) protocols.push(`openai-insecure-api-key.${key}`);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime`;
  socket = new WebSocket(url, protocols);
  socket.onmessage = (message) => onEvent(JSON.parse(message.data));
  socket.onclose = (closed) => {
    setStatus(closed.reason ? `Disconnected: ${closed.reason}` : "Disconnected", closed.wasClean ? "idle" : "error");
    stop();
  };
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = () => reject(new Error("The server refused the connection.")); });

  microphone = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  const input = context.createMediaStreamSource(microphone);
  capture = new AudioWorkletNode(context, "pcm-capture");
  capture.port.onmessage = ({ data }) => {
    ui.level.style.width = `${Math.min(100, data.rms * 400)}%`;
    if (handsFree() || talking) send({ type: "input_audio_buffer.append", audio: base64(data.pcm) });
  };
  input.connect(capture);
  ui.stop.disabled = false;
  ui.talk.disabled = handsFree();
}

// The page never holds the server's real key: it takes an ephemeral key (ek_…, good for one session), or the URL of a
// token endpoint of your own (it POSTs /v1/realtime/client_secrets with the real key and returns the answer), asked anew
// for each session.
async function ephemeralKey(value) {
  if (!value) return null;
  if (value.startsWith("ek_")) {
    ui.key.value = ""; // used once: the server will not take it again
    return value;
  }
  if (!/^(https?:\/\/|\/)/.test(value)) {
    throw new Error("Give an ephemeral key (ek_…) or the URL of a token endpoint, never the server's API key.");
  }
  const response = await fetch(value, { method: "POST" });
  if (!response.ok) throw new Error(`The token endpoint answered ${response.status}.`);
  const secret = await response.json();
  const key = secret.value ?? secret.client_secret?.value;
  if (!key?.startsWith("ek_")) throw new Error("The token endpoint's answer has no ek_ value.");
  return key;
}

function stop() {
  microphone?.getTracks().forEach((track) => track.stop());
  capture?.disconnect();
  if (socket && socket.readyState === WebSocket.OPEN) socket.close(1000, "The user stopped.");
  silence();
  ui.start.disabled = false;
  ui.stop.disabled = true;
  ui.talk.disabled = true;
}

function pressTalk() {
  if (handsFree() || !socket) return;
  silence();
  send({ type: "response.cancel" });
  send({ type: "input_audio_buffer.clear" });
  talking = true;
  ui.talk.classList.add("active");
  setStatus("Hearing you…", "listening");
}

function releaseTalk() {
  if (!talking) return;
  talking = false;
  ui.talk.classList.remove("active");
  turnEndedAt = performance.now();
  firstAudioSeen = false;
  send({ type: "input_audio_buffer.commit" });
  send({ type: "response.create" });
}

ui.start.addEventListener("click", () => start().catch((e) => { setStatus(e.message, "error"); stop(); }));
ui.stop.addEventListener("click", stop);
ui.talk.addEventListener("pointerdown", pressTalk);
ui.talk.addEventListener("pointerup", releaseTalk);
ui.talk.addEventListener("pointerleave", releaseTalk);
for (const radio of document.querySelectorAll("input[name=mode]")) {
  radio.addEventListener("change", () => {
    ui.talk.disabled = handsFree() || !socket || socket.readyState !== WebSocket.OPEN;
    sessionUpdate();
  });
}
