// Captures the microphone as 16-bit PCM at the context's rate (24 kHz), in 100 ms chunks, with their level.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.chunk = new Int16Array(sampleRate / 10);
    this.filled = 0;
    this.energy = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.energy += s * s;
      this.chunk[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.chunk.length) {
        this.port.postMessage({ pcm: this.chunk.buffer, rms: Math.sqrt(this.energy / this.filled) }, [this.chunk.buffer]);
        this.chunk = new Int16Array(sampleRate / 10);
        this.filled = 0;
        this.energy = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
