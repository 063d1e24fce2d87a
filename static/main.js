// The page: wires the socket, the log, the roster and the entry together. Peer text is
// only ever set with textContent, never parsed as HTML.
import { Log } from "./log.js";
import { Roster } from "./roster.js";
import { Sender } from "./send.js";
import { RulesPanel } from "./rules.js";
import { SnippetBar } from "./snippets.js";
import { Socket } from "./socket.js";
import { VIEWS } from "./views.js";

const role = document.body.dataset.role;
const badge = document.getElementById("status");
const notice = document.getElementById("send-error");
const peerSelect = document.getElementById("peer");
const rowView = document.getElementById("row-view");
const search = document.getElementById("search");
let tcpAddress = "";
let lastStatus = null;

function noteError(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

const log = new Log(document.getElementById("log"), {
  role,
  newButton: document.getElementById("new"),
  onError: noteError,
});

const roster = new Roster(document.getElementById("roster"), {
  role,
  onError: noteError,
  onTarget: (peer) => {
    if (!peerSelect) return;
    peerSelect.value = peer;
    document.getElementById("entry").focus();
  },
});

const socket = new Socket({
  hello(frame, restarted) {
    tcpAddress = frame.tcp;
    const port = frame.tcp.slice(frame.tcp.lastIndexOf(":"));
    document.title = `webchat · ${role} ${role === "server" ? port : frame.tcp}`;
    if (restarted) log.reset(); // a new transcript: its entries replace the old ones
    sender.chat(Boolean(frame.chat));
  },
  entries: (entries) => log.push(entries),
  status(frame) {
    lastStatus = frame;
    roster.update(frame);
    if (peerSelect) {
      const chosen = peerSelect.value;
      const names = frame.peers.map((p) => p.peer).sort();
      peerSelect.replaceChildren(new Option("All peers", ""), ...names.map((n) => new Option(n, n)));
      peerSelect.value = names.includes(chosen) ? chosen : "";
    }
    showState();
  },
  reply: (frame) => sender.reply(frame),
  state(open) {
    if (open) roster.fresh();
    else {
      lastStatus = null; // never show TCP figures from before the socket went down
      roster.stale();
    }
    showState();
  },
});

const sender = new Sender(document.getElementById("send-form"), {
  socket,
  target: () => (peerSelect && peerSelect.value) || null,
});

new RulesPanel(document.getElementById("rules"), { say: (text) => sender.say(text) });

new SnippetBar(document.getElementById("snippets"), {
  target: () => (peerSelect && peerSelect.value) || null,
  entry: document.getElementById("entry"),
  mode: document.getElementById("send-mode"),
  say: (text) => sender.say(text),
});

function showState() {
  if (!socket.open) {
    badge.textContent = "webchat unreachable · reconnecting…";
    badge.className = "badge bad";
    return;
  }
  if (lastStatus && lastStatus.store && !lastStatus.store.ok) {
    // The transcript cannot be written (a full disk, Redis away): say so, sends get 503.
    badge.textContent = `transcript store unavailable · sends refused, TCP peers wait · ${lastStatus.store.error}`;
    badge.className = "badge bad";
    return;
  }
  const rtt = socket.rttMs === null ? "" : ` (${socket.rttMs < 10 ? socket.rttMs.toFixed(1) : Math.round(socket.rttMs)} ms)`;
  let tcp = "";
  let up = false;
  if (lastStatus && (role === "server" || role === "view")) {
    // A shared room (--store redis://) also counts the peers other instances hold: those
    // are listed without counters.
    const n = lastStatus.peer_count;
    const here = n - lastStatus.peers.filter((p) => p.connected_at === undefined).length;
    const clients = (k) => `${k} client${k === 1 ? "" : "s"}`;
    const room = here < n ? ` · ${n} in the room` : "";
    tcp = role === "view" ? ` · TCP ${clients(n)} in the room` : ` · TCP ${clients(here)} on ${tcpAddress}${room}`;
    up = n > 0;
  } else if (lastStatus && lastStatus.connection) {
    const c = lastStatus.connection;
    up = c.state === "connected";
    tcp = up ? ` · TCP connected to ${c.target}` : ` · TCP ${c.state === "retrying" ? `retrying ${c.target} in ${c.retry_in} s` : `${c.state}: ${c.target}`}`;
  }
  badge.textContent = `WebSocket open${rtt}${tcp}`;
  badge.className = "badge " + (up ? "ok" : "");
}

let searchTimer = 0;
search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const query = search.value.trim();
    await log.search(query);
    document.getElementById("search-info").textContent = query ? `showing matches for “${query}”` : "";
  }, 250);
});
document.getElementById("hex-all").addEventListener("change", (ev) => log.setHexAll(ev.target.checked));
log.el.addEventListener("selected", (ev) => {
  const e = ev.detail;
  rowView.disabled = !e || e.type !== "message";
  if (e && e.type === "message") rowView.value = log.viewOf(e);
});
rowView.addEventListener("change", () => {
  if (VIEWS.includes(rowView.value)) log.setView(log.selected, rowView.value);
});
const drawer = document.getElementById("roster");
drawer.open = window.matchMedia("(min-width: 48rem)").matches; // a drawer on a phone

showState();
socket.connect();
