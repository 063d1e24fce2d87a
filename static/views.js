// How one entry reads: its words, its bytes, and its text, escaped or hex views.
// Pure functions: no DOM, no state.

export const VIEWS = ["text", "escaped", "hex"];

const utf8 = new TextEncoder();

// b64 comes only when text is not exactly the bytes (docs/protocol.md, Entries).
export function bytesOf(e) {
  if (e.b64 === undefined) return utf8.encode(e.text);
  return Uint8Array.from(atob(e.b64), (c) => c.charCodeAt(0));
}

const NAMED = { 0: "\\0", 9: "\\t", 10: "\\n", 13: "\\r", 92: "\\\\" };

export function escaped(bytes) {
  let out = "";
  for (const b of bytes) {
    if (NAMED[b]) out += NAMED[b];
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += "\\x" + b.toString(16).padStart(2, "0");
  }
  return out;
}

// A hex dump whose rows fit `columns` characters: 16 bytes a row on a desktop, fewer on a
// phone, with a shorter offset, so the ASCII column stays in sight instead of scrolling sideways.
export function hexDump(bytes, columns = 80) {
  const offset = columns >= 46 ? 8 : columns >= 25 ? 4 : 0;
  const width = (n) => (offset ? offset + 2 : 0) + 3 * n - 1 + 3 + n;
  let perRow = 16;
  while (perRow > 4 && width(perRow) > columns) perRow /= 2;
  const rows = [];
  for (let at = 0; at < bytes.length; at += perRow) {
    const row = bytes.slice(at, at + perRow);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    const where = offset ? at.toString(16).padStart(offset, "0") + "  " : "";
    rows.push(`${where}${hex.padEnd(3 * perRow - 1)}  |${ascii}|`);
  }
  return rows.join("\n") || "(empty)";
}

export function shown(e, view, columns) {
  if (view === "escaped") return escaped(bytesOf(e));
  if (view === "hex") return hexDump(bytesOf(e), columns);
  return e.text;
}

export function clock(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

export function eventWords(e, role) {
  const words = {
    listening: () => `Waiting for a client... (${e.detail})`,
    connected: () => (role === "server" ? `Connected with ${e.peer}` : `Connected to server ${e.peer}`),
    half_closed: () => `${e.peer} finished sending; you can still reply`,
    disconnected: () => `${e.peer} disconnected (${e.detail})`,
    rejected: () => `Rejected ${e.peer}: ${e.detail}`,
    connect_failed: () => `Cannot connect to ${e.peer}: ${e.detail}`,
    chat: () => `* ${e.detail}`,
    tls: () => `TLS with ${e.peer}: ${e.detail}`,
    telnet: () => `Telnet negotiation from ${e.peer}: ${e.detail}`,
    cleared: () => `Transcript cleared: ${e.detail}`,
  }[e.kind];
  return words ? words() : `${e.kind} ${e.peer || ""} ${e.detail}`;
}

// The server's search rule (Python's str.casefold): upper then lower case folds ß to ss
// and É to é, as casefold does, so live entries are filtered as the API filters the rest.
export function fold(text) {
  return text.toUpperCase().toLowerCase();
}

export function matches(e, query) {
  if (!query) return true;
  return fold(e.type === "message" ? e.text : e.detail).includes(fold(query));
}
