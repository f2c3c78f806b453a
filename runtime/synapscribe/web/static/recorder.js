// Push to talk: MediaRecorder on the microphone, at a low bit rate so a spoken question usually fits
// one WebSocket frame inline; longer ones go up as a query upload. Chromium and Firefox record
// WebM/Opus, Safari MP4/AAC: the server accepts both.

const CANDIDATES = ["audio/webm;codecs=opus", "audio/mp4", "audio/ogg;codecs=opus", "audio/webm"];

export function pickMimeType() {
  if (typeof MediaRecorder === "undefined") return null;
  return CANDIDATES.find((type) => MediaRecorder.isTypeSupported(type)) ?? "";
}

export class PushToTalk {
  constructor({ audioBitsPerSecond, maxSeconds }) {
    this.audioBitsPerSecond = audioBitsPerSecond;
    this.maxSeconds = maxSeconds;
    this.stream = null;
    this.recorder = null;
    this.startedAt = 0;
  }

  get recording() {
    return this.recorder?.state === "recording";
  }

  async start(onAutoStop) {
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
    this.timer = setTimeout(() => onAutoStop?.(), this.maxSeconds * 1000);
  }

  /** The recording as {blob, seconds, contentType} (contentType without codec parameters). */
  async stop() {
    clearTimeout(this.timer);
    const recorder = this.recorder;
    if (!recorder || recorder.state === "inactive") return null;
    const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
    recorder.stop();
    await stopped;
    const type = recorder.mimeType || this.chunks[0]?.type || "audio/webm";
    const blob = new Blob(this.chunks, { type });
    return { blob, seconds: (performance.now() - this.startedAt) / 1000, contentType: type.split(";")[0].trim() };
  }
}
