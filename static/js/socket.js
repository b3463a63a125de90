// socket.js — the live connection to /ws/: connects with the session's token,
// hands each JSON frame to the page, keeps the connection alive with pings,
// and reconnects with exponential backoff (with jitter) after any loss.

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30000;
// A ping unanswered by the next one closes the connection (then it reconnects).
const PING_EVERY_MS = 20000;

/** A WebSocket that stays connected while started. */
export class LiveSocket {
  /**
   * `token()` gives the current token (null: stay offline); `onFrame(frame)`
   * gets every frame; `onState({state, retryIn})` hears `connecting`,
   * `online` and `offline`; `onLost()` runs after each loss (e.g. to check
   * whether the token still works).
   */
  constructor({ token, onFrame, onState, onLost }) {
    Object.assign(this, { tokenOf: token, onFrame, onState, onLost });
    this.attempt = 0;
    this.socket = null;
    this.timers = [];
    this.started = false;
  }

  start() {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  stop() {
    this.started = false;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.onState({ state: "offline" });
  }

  /** Sends a frame; false when not connected. */
  send(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    const token = this.tokenOf();
    if (!this.started) return;
    if (!token) {
      // Signed out: stopped, so the next sign-in's start() connects again.
      this.stop();
      return;
    }
    this.onState({ state: "connecting" });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/?token=${encodeURIComponent(token)}`);
    this.socket = socket;
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = () => this.lost(socket);
    socket.onerror = () => socket.close();
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      return;
    }
    this.awaitingPong = false;
    if (frame.type === "hello") {
      this.attempt = 0;
      this.onState({ state: "online" });
      this.schedulePing();
    }
    this.onFrame(frame);
  }

  schedulePing() {
    this.clearTimers();
    this.timers.push(setInterval(() => {
      if (this.awaitingPong) {
        this.socket.close();
        return;
      }
      this.awaitingPong = this.send({ type: "ping" });
    }, PING_EVERY_MS));
  }

  lost(socket) {
    if (socket !== this.socket) return;
    this.clearTimers();
    this.socket = null;
    if (!this.started) return;
    const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempt);
    const delay = Math.round(ceiling * (0.5 + Math.random() / 2));
    this.attempt += 1;
    this.onState({ state: "offline", retryIn: Math.ceil(delay / 1000) });
    if (this.onLost) this.onLost();
    this.timers.push(setTimeout(() => this.connect(), delay));
  }

  clearTimers() {
    this.timers.forEach((timer) => clearInterval(timer));
    this.timers = [];
    this.awaitingPong = false;
  }
}

/** The text a connection state shows. */
export function describeState({ state, retryIn }) {
  if (state === "online") return "Live";
  if (state === "connecting") return "Connecting…";
  return retryIn ? `Offline — retrying in ${retryIn} s` : "Offline";
}
