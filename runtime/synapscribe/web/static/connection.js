// One WebSocket to the API with reconnects. `makeUrl` is called for every attempt, so a deployed
// page signs each `$connect` afresh. Messages go to `onMessage`; `request` waits for one reply.

export class Connection {
  constructor({ makeUrl, onMessage, onState }) {
    this.makeUrl = makeUrl;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.waiters = [];
    this.attempt = 0;
    this.closedByUs = false;
  }

  async open() {
    this.closedByUs = false;
    this.onState(this.attempt ? "reconnecting" : "connecting");
    let url;
    try {
      url = await this.makeUrl();
    } catch (error) {
      this.onState("offline", `Could not sign in as a guest: ${error.message}`);
      return this._retry();
    }
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      const reconnected = this.attempt > 0;
      this.attempt = 0;
      this.onState("open", reconnected ? "reconnected" : "");
    });
    ws.addEventListener("message", (event) => this._receive(event.data));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("The connection dropped."));
      if (!this.closedByUs) this._retry();
    });
  }

  _retry() {
    this.attempt += 1;
    const delay = Math.min(8000, 500 * 2 ** (this.attempt - 1));
    this.onState("reconnecting", `Connection lost. Reconnecting in ${Math.round(delay / 100) / 10} s…`);
    setTimeout(() => this.open(), delay);
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  close() {
    this.closedByUs = true;
    this.ws?.close();
  }

  _receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    const index = this.waiters.findIndex((w) => w.matches(message));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      waiter.resolve(message);
      return;
    }
    this.onMessage(message);
  }

  send(message) {
    if (!this.isOpen) throw new Error("Not connected: wait until the page says Connected.");
    this.ws.send(JSON.stringify(message));
  }

  /** Send `message`; resolve with the next `expect` message (or an `error` without requestId). */
  request(message, expect, { timeoutMs = 15000, where = () => true } = {}) {
    return new Promise((resolve, reject) => {
      const waiter = {
        matches: (m) => (m.type === expect && where(m)) || (m.type === "error" && !m.requestId),
        resolve: (m) => {
          clearTimeout(waiter.timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(waiter.timer);
          reject(e);
        },
      };
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error("The server did not answer in time."));
      }, timeoutMs);
      this.waiters.push(waiter);
      try {
        this.send(message);
      } catch (error) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.reject(error);
      }
    });
  }
}
