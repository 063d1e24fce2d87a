// The page: one WebSocket to /ws, a log of entries, an entry and a Send button.
// Older entries and searches come from the REST API. Peer text is only ever
// set with textContent, never parsed as HTML.
"use strict";

const MAX_LINES = 5000; // while following the tail the DOM keeps the newest lines only
const PAGE = 200; // entries fetched per scroll-up or search
const role = document.body.dataset.role;
const log = document.getElementById("log");
const statusBadge = document.getElementById("status");
const form = document.getElementById("send-form");
const entry = document.getElementById("entry");
const peerSelect = document.getElementById("peer");
const search = document.getElementById("search");
const searchInfo = document.getElementById("search-info");
const olderButton = document.getElementById("older");
const hexAll = document.getElementById("hex-all");
const sendMode = document.getElementById("send-mode");
const PING_EVERY = 10000; // ms between round-trip probes on the WebSocket
const PING_GRACE = 30000; // no pong for this long: the socket is dead, reconnect
const VIEWS = ["text", "escaped", "hex"];

let socket = null;
let lastId = 0;
let epoch = null; // the transcript's identity from hello; ids only mean something within one
let replayedUpTo = 0;
let retryDelay = 500;
let tcpAddress = "";
const peers = new Set();
let oldestId = 0; // the oldest entry in the log, 0 when it shows none
let olderDone = false; // nothing older is left to load for this view
let loadingOlder = false;
let query = ""; // the active search; "" shows everything
let arrivedDuringFetch = null; // entries that came while a search was being fetched
const messages = new WeakMap(); // line element -> its entry, for the global hex switch
let pingId = 0;
let pingSentAt = 0;
let lastPong = 0;
let rttMs = null;
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

function line(cls, ts, parts, id) {
  const el = document.createElement("div");
  el.className = "line " + cls;
  if (id) el.dataset.id = String(id);
  const time = document.createElement("time");
  time.textContent = clock(ts);
  if (ts) time.dateTime = ts;
  el.append(time, ...parts);
  return el;
}

function atBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}

function append(el) {
  const follow = atBottom();
  log.append(el);
  if (follow) {
    while (log.childElementCount > MAX_LINES) {
      log.firstElementChild.remove();
      olderDone = false;
    }
    noteOldest();
    log.scrollTop = log.scrollHeight;
  }
}

function prepend(els) {
  const fromBottom = log.scrollHeight - log.scrollTop;
  log.prepend(...els);
  log.scrollTop = log.scrollHeight - fromBottom; // the lines the user was reading stay put
}

function noteOldest() {
  const first = log.querySelector(".line[data-id]");
  oldestId = first ? Number(first.dataset.id) : 0;
  olderButton.hidden = olderDone || oldestId <= 1;
}

function say(cls, text) {
  append(line(cls, null, [span("text", text)]));
}

const EVENT_WORDS = {
  listening: (e) => `Waiting for a client... (${e.detail})`,
  connected: (e) => (role === "server" ? `Connected with ${e.peer}` : `Connected to server ${e.peer}`),
  disconnected: (e) => `${e.peer} disconnected (${e.detail})`,
  rejected: (e) => `Rejected ${e.peer}: ${e.detail}`,
  connect_failed: (e) => `Cannot connect to ${e.peer}: ${e.detail}`,
};

const utf8 = new TextEncoder();

function bytesOf(e) {
  // b64 comes only when text is not exactly the bytes (docs/protocol.md, Entries)
  if (e.b64 === undefined) return utf8.encode(e.text);
  return Uint8Array.from(atob(e.b64), (c) => c.charCodeAt(0));
}

const NAMED = { 0: "\\0", 9: "\\t", 10: "\\n", 13: "\\r", 92: "\\\\" };

function escaped(bytes) {
  let out = "";
  for (const b of bytes) {
    if (NAMED[b]) out += NAMED[b];
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += "\\x" + b.toString(16).padStart(2, "0");
  }
  return out;
}

function hexDump(bytes) {
  const rows = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.slice(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    rows.push(`${at.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  return rows.join("\n") || "(empty)";
}

function render(el, e, view) {
  const text = el.querySelector(".text");
  const button = el.querySelector("button.view");
  el.dataset.view = view;
  button.textContent = view;
  button.setAttribute("aria-label", `Showing ${view}; switch view`);
  if (view === "text") text.textContent = e.text;
  else if (view === "escaped") text.textContent = escaped(bytesOf(e));
  else text.textContent = hexDump(bytesOf(e));
}

function entryLine(e) {
  if (e.type === "message") {
    const target = e.direction === "out" ? `to ${e.peer || "all"}` : `from ${e.peer}`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "view";
    const el = line(e.direction, e.ts, [span("dir", e.direction), span("peer", target), button, span("text", "")], e.id);
    render(el, e, hexAll.checked ? "hex" : "text");
    button.addEventListener("click", () => {
      render(el, e, VIEWS[(VIEWS.indexOf(el.dataset.view) + 1) % VIEWS.length]);
    });
    messages.set(el, e);
    return el;
  }
  const words = EVENT_WORDS[e.kind] || ((x) => `${x.kind} ${x.peer || ""} ${x.detail}`);
  return line("event " + e.kind, e.ts, [span("text", words(e))], e.id);
}

// The server's search rule (Python's str.casefold): upper then lower case folds ß to ss
// and É to é, as casefold does, so live entries are filtered as the API filters the rest.
function fold(text) {
  return text.toUpperCase().toLowerCase();
}

function matches(e) {
  if (!query) return true;
  const text = e.type === "message" ? e.text : e.detail;
  return fold(text).includes(fold(query));
}

async function fetchEntries(before) {
  const params = new URLSearchParams({ before: String(before), limit: String(PAGE) });
  if (query) params.set("q", query);
  const response = await fetch("api/messages?" + params);
  if (!response.ok) throw new Error(`the transcript answered ${response.status}`);
  return (await response.json()).messages;
}

async function loadOlder() {
  if (loadingOlder || olderDone || oldestId <= 1) return;
  loadingOlder = true;
  try {
    const older = await fetchEntries(oldestId);
    olderDone = older.length < PAGE;
    if (older.length) prepend(older.map(entryLine));
    noteOldest();
  } catch (err) {
    say("error", `Could not load older entries: ${err.message}`);
  } finally {
    loadingOlder = false;
  }
}

async function runSearch() {
  query = search.value.trim();
  const upTo = lastId;
  arrivedDuringFetch = [];
  let found;
  try {
    found = await fetchEntries(upTo + 1);
  } catch (err) {
    arrivedDuringFetch = null;
    say("error", `Search failed: ${err.message}`);
    return;
  }
  const later = arrivedDuringFetch.filter((e) => e.id > upTo && matches(e));
  arrivedDuringFetch = null;
  log.replaceChildren(...found.map(entryLine), ...later.map(entryLine));
  olderDone = found.length < PAGE;
  noteOldest();
  log.scrollTop = log.scrollHeight;
  const shown = found.length + later.length;
  searchInfo.textContent = query ? `${shown}${olderDone ? "" : "+"} match${shown === 1 ? "" : "es"}` : "";
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
  const rtt = open && rttMs !== null ? ` (${rttMs < 10 ? rttMs.toFixed(1) : Math.round(rttMs)} ms)` : "";
  statusBadge.textContent = `WebSocket ${open ? "open" + rtt : "reconnecting…"} · TCP ${tcp}`;
  statusBadge.className = "badge " + (open && peers.size ? "ok" : open ? "" : "bad");
}

function onFrame(frame) {
  if (frame.type === "batch") {
    for (const inner of frame.frames) onFrame(inner);
  } else if (frame.type === "hello") {
    tcpAddress = frame.tcp;
    if (epoch && frame.epoch !== epoch) {
      lastId = 0; // a new transcript (a :memory: restart): its ids start again, replayed from 1
      say("event", "the transcript restarted; showing it from the beginning");
    }
    epoch = frame.epoch;
    replayedUpTo = frame.last_id || 0;
    peers.clear();
    for (const p of frame.peers) peers.add(p);
    refreshPeers();
  } else if (frame.type === "message" || frame.type === "event") {
    if (frame.id <= lastId) return; // already shown before a reconnect
    lastId = frame.id;
    if (frame.kind === "cleared") {
      log.replaceChildren(); // the transcript was emptied: so is the log
      olderDone = true;
    }
    if (arrivedDuringFetch) arrivedDuringFetch.push(frame);
    if (matches(frame)) append(entryLine(frame));
    if (!oldestId) noteOldest();
    trackPeers(frame);
  } else if (frame.type === "error") {
    say("error", frame.detail);
  } else if (frame.type === "pong" && frame.id === pingId) {
    lastPong = Date.now();
    rttMs = performance.now() - pingSentAt;
    showStatus();
  }
}

function ping() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (Date.now() - lastPong > PING_GRACE) {
    say("event", "WebSocket stopped answering; reconnecting");
    socket.close();
    return;
  }
  pingId += 1;
  pingSentAt = performance.now();
  socket.send(JSON.stringify({ type: "ping", id: pingId }));
}

function connect() {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (lastId) url.searchParams.set("after", String(lastId));
  if (epoch) url.searchParams.set("epoch", epoch);
  url.searchParams.set("batch", "1"); // a flood arrives as a few messages, not one per line
  socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    retryDelay = 500;
    lastPong = Date.now();
    rttMs = null;
    ping();
    showStatus();
  });
  socket.addEventListener("message", (ev) => onFrame(JSON.parse(ev.data)));
  socket.addEventListener("close", (ev) => {
    showStatus();
    if (ev.code === 1001) say("event", `WebSocket closed: ${ev.reason || ev.code}`);
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
  const frame = { type: "send" };
  if (sendMode.value === "hex") frame.hex = entry.value;
  else frame.text = entry.value;
  if (sendMode.value === "escapes") frame.escapes = true;
  if (peerSelect && peerSelect.value) frame.to = peerSelect.value;
  socket.send(JSON.stringify(frame));
  entry.value = "";
  entry.focus();
});

let searchTimer = 0;
search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 250);
});
log.addEventListener("scroll", () => {
  if (log.scrollTop < 40) loadOlder();
});
olderButton.addEventListener("click", loadOlder);
hexAll.addEventListener("change", () => {
  for (const el of log.querySelectorAll(".line[data-view]")) {
    render(el, messages.get(el), hexAll.checked ? "hex" : "text");
  }
});
sendMode.addEventListener("change", () => {
  entry.placeholder = {
    text: "Type a message, Enter sends",
    escapes: "Text with \\r \\n \\t \\0 \\xNN \\\\ escapes",
    hex: "Hex bytes, e.g. de ad be ef",
  }[sendMode.value];
});
setInterval(ping, PING_EVERY);

showStatus();
connect();
