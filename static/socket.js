// The one WebSocket to /ws: hello, entries (in batches), status, replies; reconnects with
// the last id and the transcript's epoch, so nothing is shown twice or missed.

const PING_EVERY = 10000; // ms between round-trip probes
const PING_GRACE = 30000; // no pong for this long: the socket is dead, reconnect

export class Socket {
  constructor(handlers) {
    this.on = handlers; // hello, entries, status, reply, state
    this.ws = null;
    this.lastId = 0;
    this.epoch = null;
    this.retryDelay = 500;
    this.pingId = 0;
    this.pingSentAt = 0;
    this.lastPong = 0;
    this.rttMs = null;
    this.everOpen = false;
    this.early = []; // sends made while the first connection is still being opened
    setInterval(() => this.ping(), PING_EVERY);
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (this.lastId) url.searchParams.set("after", String(this.lastId));
    if (this.epoch) url.searchParams.set("epoch", this.epoch);
    url.searchParams.set("batch", "1"); // a flood arrives as a few messages, not one per line
    url.searchParams.set("status", "1"); // the roster, pushed by the server
    const name = localStorage.getItem("webchat.name"); // --chat: the roster shows who is here
    if (name) url.searchParams.set("name", name);
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.retryDelay = 500;
      this.lastPong = Date.now();
      this.rttMs = null;
      this.everOpen = true;
      for (const frame of this.early.splice(0)) ws.send(JSON.stringify(frame));
      this.ping();
      this.on.state(true);
    });
    ws.addEventListener("message", (ev) => this.received(JSON.parse(ev.data)));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.on.state(false);
      setTimeout(() => this.connect(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 10000);
    });
  }

  received(message) {
    const entries = [];
    for (const frame of message.type === "batch" ? message.frames : [message]) {
      if (frame.type === "message" || frame.type === "event") {
        if (frame.id <= this.lastId) continue; // already shown before a reconnect
        this.lastId = frame.id;
        entries.push(frame);
      } else if (frame.type === "hello") {
        const restarted = this.epoch !== null && frame.epoch !== this.epoch;
        if (restarted) this.lastId = 0; // a new transcript: its ids start again
        this.epoch = frame.epoch;
        this.on.hello(frame, restarted);
      } else if (frame.type === "status") {
        this.on.status(frame);
      } else if (frame.type === "pong") {
        if (frame.id === this.pingId) {
          this.lastPong = Date.now();
          this.rttMs = performance.now() - this.pingSentAt;
          this.on.state(true);
        }
      } else {
        this.on.reply(frame); // sent, error
      }
    }
    if (entries.length) this.on.entries(entries);
  }

  send(frame) {
    // Enter pressed as the page loads: the first connection is on its way, so the send
    // waits for it rather than being refused. After that, a closed socket refuses.
    const opening = !this.everOpen && this.ws !== null && this.ws.readyState === WebSocket.CONNECTING;
    if (opening && this.early.length < 100) {
      this.early.push(frame);
      return true;
    }
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  ping() {
    if (!this.open) return;
    if (Date.now() - this.lastPong > PING_GRACE) {
      this.ws.close(); // dead: the close handler reconnects
      return;
    }
    this.pingId += 1;
    this.pingSentAt = performance.now();
    this.send({ type: "ping", id: this.pingId });
  }
}
