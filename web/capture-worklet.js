// Microphone -> 16 kHz mono PCM16, on the audio thread.
//
// The browser captures at the sound card's rate (usually 48 kHz). A low-pass FIR (cutoff below
// the new Nyquist frequency, so hiss above 8 kHz does not fold into the speech band) followed by
// linear interpolation gives the server exactly the audio its VAD and Whisper expect, and the
// main thread only forwards 20 ms Int16Array frames to the WebSocket.
class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const target = (options.processorOptions && options.processorOptions.targetRate) || 16000;
    this.step = sampleRate / target; // input samples per output sample
    const taps = 31;
    const cutoff = Math.min(0.45 * target, 7200) / sampleRate; // cycles per input sample
    const h = new Float32Array(taps);
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const m = k - (taps - 1) / 2;
      const sinc = m === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * m) / (Math.PI * m);
      const hamming = 0.54 - 0.46 * Math.cos((2 * Math.PI * k) / (taps - 1));
      h[k] = sinc * hamming;
      sum += h[k];
    }
    for (let k = 0; k < taps; k++) h[k] /= sum;
    this.h = h;
    this.ring = new Float32Array(taps);
    this.pos = 0; // next write index in ring
    this.count = 0; // filtered samples produced so far
    this.prev = 0; // previous filtered sample
    this.next = 0; // position (in filtered samples) of the next output sample
    this.frameSize = Math.round(target / 50); // 20 ms
    this.frame = new Int16Array(this.frameSize);
    this.fill = 0;
  }

  emit(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.fill === this.frameSize) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // detaches this.frame
      this.frame = new Int16Array(this.frameSize);
      this.fill = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || !input[0]) return true;
    const x = input[0];
    const taps = this.h.length;
    for (let i = 0; i < x.length; i++) {
      this.ring[this.pos] = x[i];
      this.pos = (this.pos + 1) % taps;
      let y = 0;
      for (let k = 0; k < taps; k++) y += this.h[k] * this.ring[(this.pos + k) % taps];
      while (this.next <= this.count) {
        const frac = this.next - (this.count - 1);
        this.emit(this.prev + (y - this.prev) * frac);
        this.next += this.step;
      }
      this.prev = y;
      this.count++;
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
