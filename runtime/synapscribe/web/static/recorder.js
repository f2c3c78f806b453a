// Push to talk: MediaRecorder on the microphone, at a low bit rate so a spoken question usually fits
// one WebSocket frame inline; longer ones go up as a query upload. Chromium and Firefox record
// WebM/Opus, Safari MP4/AAC: the server accepts both. While recording, the microphone's level and
// the seconds left are reported (the page shows a meter and a countdown), and the recording stops
// itself `marginSeconds` before the server's length limit, so a question is never refused for it.

const CANDIDATES = ["audio/webm;codecs=opus", "audio/mp4", "audio/ogg;codecs=opus", "audio/webm"];

export function pickMimeType() {
  if (typeof MediaRecorder === "undefined") return null;
  return CANDIDATES.find((type) => MediaRecorder.isTypeSupported(type)) ?? "";
}

export class PushToTalk {
  constructor({ audioBitsPerSecond, maxSeconds, marginSeconds = 1.5 }) {
    this.audioBitsPerSecond = audioBitsPerSecond;
    this.maxSeconds = maxSeconds;
    // Stops this much before the limit: the server measures the file, a little longer than the clock.
    this.stopAfterSeconds = Math.max(1, maxSeconds - marginSeconds);
    this.stream = null;
    this.recorder = null;
    this.startedAt = 0;
  }

  get recording() {
    return this.recorder?.state === "recording";
  }

  /** Start recording; `onAutoStop` when the length limit is near, `onTick(secondsLeft)` and
   * `onLevel(0..1)` a few times a second. */
  async start({ onAutoStop, onTick = () => {}, onLevel = () => {} } = {}) {
    if (this.recording) return;
    this.stream ??= await navigator.mediaDevices.getUserMedia({ audio: true });
    const mimeType = pickMimeType();
    const options = { audioBitsPerSecond: this.audioBitsPerSecond };
    if (mimeType) options.mimeType = mimeType;
    this.recorder = new MediaRecorder(this.stream, options);
    this.chunks = [];
    this.recorder.addEventListener("dataavailable", (e) => e.data.size && this.chunks.push(e.data));
    this.recorder.start();
    this.startedAt = performance.now();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => onAutoStop?.(), this.stopAfterSeconds * 1000);
    this._watchLevel(onLevel);
    clearInterval(this.ticker);
    const tick = () => onTick(Math.max(0, this.stopAfterSeconds - this.elapsed()));
    tick();
    this.ticker = setInterval(tick, 250);
  }

  elapsed() {
    return (performance.now() - this.startedAt) / 1000;
  }

  _watchLevel(onLevel) {
    try {
      this.audioContext ??= new AudioContext();
      const source = this.audioContext.createMediaStreamSource(this.stream);
      const analyser = this.audioContext.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      clearInterval(this.levelTimer);
      this.levelTimer = setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const v of samples) sum += v * v;
        onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 4));
      }, 100);
      this.levelSource = source;
    } catch {
      // No Web Audio: recording works without a meter.
    }
  }

  /** The recording as {blob, seconds, contentType} (contentType without codec parameters). */
  async stop() {
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    clearInterval(this.levelTimer);
    this.levelSource?.disconnect();
    const recorder = this.recorder;
    if (!recorder || recorder.state === "inactive") return null;
    const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
    recorder.stop();
    await stopped;
    const type = recorder.mimeType || this.chunks[0]?.type || "audio/webm";
    const blob = new Blob(this.chunks, { type });
    return { blob, seconds: this.elapsed(), contentType: type.split(";")[0].trim() };
  }
}
