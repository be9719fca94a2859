#!/usr/bin/env bash
# Writes the Opus fixtures of this folder from two synthetic WAVs (see README.md). Needs python3, opus-tools, ffmpeg,
# and for the browser recording Debian's chromium (apt-get install opus-tools ffmpeg chromium).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

python3 - <<'PY'
import wave, math, struct
def write(name, rate, channels, seconds, f):
    w = wave.open(name, 'wb'); w.setnchannels(channels); w.setsampwidth(2); w.setframerate(rate)
    w.writeframes(b''.join(struct.pack('<' + 'h' * channels, *[int(round(32767 * v)) for v in f(i / rate)]) for i in range(int(rate * seconds))))
    w.close()
tone = lambda t, f, a: a * math.sin(2 * math.pi * f * t)
# Left 440 Hz + 1250 Hz, right 440 Hz - 1250 Hz: the mono downmix is the 440 Hz tone alone.
write('tones-stereo-48k.wav', 48000, 2, 1.0, lambda t: (tone(t, 440, 0.3) + tone(t, 1250, 0.2), tone(t, 440, 0.3) - tone(t, 1250, 0.2)))
write('tones-mono-16k.wav', 16000, 1, 0.75, lambda t: (tone(t, 440, 0.3) + tone(t, 1250, 0.2),))
PY

opusenc --quiet --bitrate 32 tones-stereo-48k.wav "$here/tones-stereo-48k.opus"
ffmpeg -hide_banner -loglevel error -y -i tones-stereo-48k.wav -c:a libopus -b:a 32k "$here/tones-stereo-48k.webm"
ffmpeg -hide_banner -loglevel error -y -i tones-mono-16k.wav -c:a libopus -b:a 24k "$here/tones-mono-16k.ogg"
ffmpeg -hide_banner -loglevel error -y -i tones-mono-16k.wav -t 0.1 -c:a libvorbis "$here/tone-vorbis.ogg"

if command -v chromium > /dev/null; then
    python3 "$here/recorder/serve.py" "$here/recorder/record.html" "$here/chrome-mediarecorder.webm" 8765 > server.log &
    server=$!
    sleep 1
    timeout 30 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$work/profile" --use-fake-ui-for-media-stream \
        --use-fake-device-for-media-stream --use-file-for-fake-audio-capture="$work/tones-stereo-48k.wav" \
        http://127.0.0.1:8765/ > chromium.log 2>&1 &
    browser=$!
    for _ in $(seq 1 25); do sleep 1; grep -q "done\|error" server.log && break; done
    kill "$browser" "$server" 2> /dev/null || true
    cat server.log
fi
ls -l "$here"
