// The page: one WebSocket to /ws, a log of entries, an entry and a Send button.
// Peer text is only ever set with textContent, never parsed as HTML.
"use strict";

const MAX_LINES = 5000; // the DOM keeps the newest lines only, so a long session stays light
const role = document.body.dataset.role;
const log = document.getElementById("log");
const statusBadge = document.getElementById("status");
const form = document.getElementById("send-form");
const entry = document.getElementById("entry");
const peerSelect = document.getElementById("peer");

let socket = null;
let lastId = 0;
let replayedUpTo = 0;
let retryDelay = 500;
let tcpAddress = "";
const peers = new Set();

function clock(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function span(cls, text) {
  const el = document.createElement("span");
  el.className = cls;
  el.textContent = text;
  return el;
}

function append(cls, ts, parts) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const line = document.createElement("div");
  line.className = "line " + cls;
  const time = document.createElement("time");
  time.textContent = clock(ts);
  if (ts) time.dateTime = ts;
  line.append(time, ...parts);
  log.append(line);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function say(cls, text) {
  append(cls, null, [span("text", text)]);
}

const EVENT_WORDS = {
  listening: (e) => `Waiting for a client... (${e.detail})`,
  connected: (e) => (role === "server" ? `Connected with ${e.peer}` : `Connected to server ${e.peer}`),
  disconnected: (e) => `${e.peer} disconnected (${e.detail})`,
  rejected: (e) => `Rejected ${e.peer}: ${e.detail}`,
  connect_failed: (e) => `Cannot connect to ${e.peer}: ${e.detail}`,
};

function showEntry(e) {
  if (e.type === "message") {
    const target = e.direction === "out" ? `to ${e.peer || "all"}` : `from ${e.peer}`;
    append(e.direction, e.ts, [span("dir", e.direction), span("peer", target), span("text", e.text)]);
  } else {
    const words = EVENT_WORDS[e.kind] || ((x) => `${x.kind} ${x.peer || ""} ${x.detail}`);
    append("event " + e.kind, e.ts, [span("text", words(e))]);
  }
}

function trackPeers(e) {
  if (e.type !== "event" || e.id <= replayedUpTo || !e.peer) return;
  if (e.kind === "connected") peers.add(e.peer);
  if (e.kind === "disconnected") peers.delete(e.peer);
  refreshPeers();
}

function refreshPeers() {
  if (peerSelect) {
    const chosen = peerSelect.value;
    peerSelect.replaceChildren(new Option("All peers", ""));
    for (const name of [...peers].sort()) peerSelect.append(new Option(name, name));
    peerSelect.value = peers.has(chosen) ? chosen : "";
  }
  showStatus();
}

function showStatus() {
  const open = socket && socket.readyState === WebSocket.OPEN;
  let tcp;
  if (role === "server") {
    tcp = `${peers.size} client${peers.size === 1 ? "" : "s"} on ${tcpAddress || "TCP"}`;
  } else {
    tcp = peers.size ? `connected to ${tcpAddress}` : `not connected to ${tcpAddress || "TCP"}`;
  }
  statusBadge.textContent = `WebSocket ${open ? "open" : "reconnecting…"} · TCP ${tcp}`;
  statusBadge.className = "badge " + (open && peers.size ? "ok" : open ? "" : "bad");
}

function onFrame(frame) {
  if (frame.type === "hello") {
    tcpAddress = frame.tcp;
    replayedUpTo = frame.last_id || 0;
    peers.clear();
    for (const p of frame.peers) peers.add(p);
    refreshPeers();
  } else if (frame.type === "message" || frame.type === "event") {
    if (frame.id <= lastId) return; // already shown before a reconnect
    lastId = frame.id;
    showEntry(frame);
    trackPeers(frame);
  } else if (frame.type === "error") {
    say("error", frame.detail);
  }
}

function connect() {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (lastId) url.searchParams.set("after", String(lastId));
  socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    retryDelay = 500;
    showStatus();
  });
  socket.addEventListener("message", (ev) => onFrame(JSON.parse(ev.data)));
  socket.addEventListener("close", (ev) => {
    showStatus();
    if (ev.code === 1013 || ev.code === 1001) say("event", `WebSocket closed: ${ev.reason || ev.code}`);
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    say("error", "Not connected to webchat yet; your text is kept, press Send again in a moment.");
    return;
  }
  const frame = { type: "send", text: entry.value };
  if (peerSelect && peerSelect.value) frame.to = peerSelect.value;
  socket.send(JSON.stringify(frame));
  entry.value = "";
  entry.focus();
});

showStatus();
connect();
