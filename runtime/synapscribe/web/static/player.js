// Spoken answers: each `audio` message is one sentence. Sentences play strictly in order (by
// request, then seq) even when they arrive out of order, each preloaded as soon as its URL arrives
// so the next one starts the moment the previous ends. Every play/ended is logged in
// `window.synapscribePlayLog` (the browser test reads it).

export class AnswerPlayer {
  constructor({ onChange = () => {}, onBlocked = () => {}, log = (globalThis.synapscribePlayLog ??= []) } = {}) {
    this.onBlocked = onBlocked;
    this.replays = 0;
    this.requests = []; // [{requestId, items: Map(seq -> {audio, text}), finished}]
    this.current = null; // {request, seq}
    this.lastSeq = new Map(); // requestId -> last seq played
    this.onChange = onChange;
    this.log = log;
  }

  _request(requestId) {
    let request = this.requests.find((r) => r.requestId === requestId);
    if (!request) {
      request = { requestId, items: new Map(), finished: false, stopped: false };
      this.requests.push(request);
    }
    return request;
  }

  begin(requestId) {
    this._request(requestId);
  }

  add(requestId, seq, url, text) {
    const request = this._request(requestId);
    if (request.items.has(seq) || request.stopped) return;
    const audio = new Audio();
    audio.preload = "auto";
    audio.src = url;
    request.items.set(seq, { audio, text, state: "queued" });
    this.log.push({ requestId, seq, event: "queued", t: performance.now() });
    this.onChange(requestId, seq, "queued");
    this._next();
  }

  /** The answer is complete: no more sentences will come for it (gaps are skipped). */
  finish(requestId) {
    this._request(requestId).finished = true;
    this._next();
  }

  /** Silence one answer now: what plays stops, nothing more of it plays (sentences that
   * arrive later are dropped); the next answer's speech starts at once. */
  stop(requestId) {
    const request = this._request(requestId);
    request.finished = true;
    request.stopped = true;
    for (const [seq, item] of request.items) {
      if (item.state === "queued" || item.state === "playing") {
        item.audio.pause();
        item.state = "skipped";
        this.log.push({ requestId, seq, event: "stopped", t: performance.now() });
        this.onChange(requestId, seq, "skipped");
      }
    }
    if (this.current?.request === request) this.current = null;
    this._next();
  }

  /** Play an answer's sentences again from the start (everything else falls silent); its
   * play log entries carry `requestId#replay-N`. */
  replay(requestId, urls) {
    this.stopAll();
    const id = `${requestId}#replay-${++this.replays}`;
    this.begin(id);
    urls.forEach((url, seq) => this.add(id, seq, url, ""));
    this.finish(id);
    return id;
  }

  stopAll() {
    for (const request of this.requests) this.stop(request.requestId);
  }

  /** True while a sentence plays or waits to play. */
  get busy() {
    return this.requests.some((r) => !r.stopped && [...r.items.values()].some((i) => ["queued", "playing"].includes(i.state)));
  }

  _pick(request) {
    const last = this.lastSeq.get(request.requestId) ?? -1;
    if (request.stopped) return null;
    const waiting = [...request.items.keys()].filter((s) => s > last).sort((a, b) => a - b);
    if (waiting.length === 0) return null;
    // Until the answer is complete a missing seq may still come: wait for it.
    if (!request.finished && waiting[0] !== last + 1) return null;
    return waiting[0];
  }

  _next() {
    if (this.current) return;
    for (const request of this.requests) {
      const seq = this._pick(request);
      if (seq !== null) return this._play(request, seq);
      if (request.stopped) continue;
      const last = this.lastSeq.get(request.requestId) ?? -1;
      const pending = [...request.items.keys()].some((s) => s > last);
      if (!request.finished || pending) return; // later requests wait for this one
    }
  }

  _play(request, seq) {
    const item = request.items.get(seq);
    this.current = { request, seq };
    const done = (event) => {
      if (this.current?.request !== request || this.current.seq !== seq) return;
      this.log.push({ requestId: request.requestId, seq, event, t: performance.now() });
      item.state = event === "ended" ? "played" : "failed";
      this.onChange(request.requestId, seq, item.state);
      this.lastSeq.set(request.requestId, seq);
      this.current = null;
      this._next();
    };
    item.audio.addEventListener("playing", () => {
      this.log.push({ requestId: request.requestId, seq, event: "play", t: performance.now() });
    }, { once: true });
    item.audio.addEventListener("ended", () => done("ended"), { once: true });
    item.audio.addEventListener("error", () => done("error"), { once: true });
    item.state = "playing";
    this.onChange(request.requestId, seq, "playing");
    item.audio.play().catch((error) => {
      if (error?.name === "NotAllowedError") this.onBlocked(request.requestId);
      done("error");
    });
  }
}
