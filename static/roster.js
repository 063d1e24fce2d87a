// Who is there, as the server says in its status frames: the TCP peers with their
// counters, the pages open, and in the client role the connection with its buttons.

export class Roster {
  constructor(el, { role, onTarget, onError }) {
    this.el = el;
    this.role = role;
    this.onTarget = onTarget;
    this.onError = onError;
    this.pending = new Map(); // peer -> pending bytes in the previous status
    this.list = el.querySelector("#peers");
    this.pages = el.querySelector("#pages");
    this.visitors = el.querySelector("#visitors");
    this.connection = el.querySelector("#connection");
    this.startTls = el.querySelector('[data-connection="starttls"]');
    for (const button of el.querySelectorAll("[data-connection]")) {
      button.addEventListener("click", () => this.change(button.dataset.connection));
    }
    // One Tab stop for the whole list, arrows within it: Tab must not walk every peer.
    this.list.addEventListener("keydown", (ev) => {
      const buttons = [...this.list.querySelectorAll("button.peer")];
      const at = buttons.indexOf(document.activeElement);
      const step = { ArrowDown: 1, ArrowUp: -1 }[ev.key];
      if (at < 0 || !step) return;
      ev.preventDefault();
      buttons[Math.max(0, Math.min(buttons.length - 1, at + step))].focus();
    });
  }

  update(status) {
    const focused = this.list.contains(document.activeElement) ? document.activeElement.textContent : null;
    const rows = status.peers.map((p, i) => this.peerRow(p, i === 0));
    if (status.peer_count > status.peers.length) {
      rows.push(item("more", `and ${status.peer_count - status.peers.length} more`));
    }
    if (!rows.length) rows.push(item("none", this.role === "server" ? "no TCP client yet" : "not connected"));
    this.list.replaceChildren(...rows);
    if (focused) {
      // a status every second must not take the keyboard focus away
      [...this.list.querySelectorAll("button.peer")].find((b) => b.textContent === focused)?.focus();
    }
    this.pending = new Map(status.peers.map((p) => [p.peer, p.pending]));
    const pages = status.subscribers;
    this.pages.textContent = `${pages} page${pages === 1 ? "" : "s"} open`;
    // Who is on the page side: a name once they gave one (--chat), where from, since when.
    this.visitors.replaceChildren(
      ...(status.pages || []).map((v) =>
        item(
          "visitor",
          `${v.name || "page"} · ${v.address} · since ${time(v.connected_at)}` +
            (v.sends ? ` · ${v.sends} sent` : "") + (v.view_only ? " · view only" : ""),
        ),
      ),
    );
    if (this.connection && status.connection) {
      const c = status.connection;
      const state = c.state === "retrying" ? `retrying in ${c.retry_in} s` : c.state;
      const tls = status.peers[0]?.tls;
      this.connection.textContent = `${c.target}: ${state}` + (tls ? ` · 🔒 ${tls.version}` : "");
      this.connection.dataset.state = c.state;
      // --starttls plain: the upgrade is the user's to start, on an open plain connection
      this.startTls.hidden = !(c.starttls === "plain" && c.state === "connected" && !tls);
    }
  }

  peerRow(p, first) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.tabIndex = first ? 0 : -1;
    button.className = "peer";
    button.textContent = p.name ? `${p.name} ${p.peer}` : p.peer; // --chat: the name first
    button.title = `Send to ${p.peer}`;
    button.addEventListener("click", () => this.onTarget(p.peer));
    const growing = p.pending > 0 && p.pending > (this.pending.get(p.peer) ?? Infinity);
    const figures = document.createElement("span");
    figures.className = "figures";
    // A shared room (--store redis://): each peer has its instance; one held elsewhere has
    // nothing more, since its counters are known only there.
    const where = p.instance ? ` · on ${p.instance}` : "";
    figures.textContent = p.connected_at === undefined ? `on ${p.instance}` :
      `since ${time(p.connected_at)} · in ${bytes(p.bytes_in)} · out ${bytes(p.bytes_out)} · ` +
      `last ${time(p.last_activity)}` + (p.pending ? ` · pending ${bytes(p.pending)}` : "") +
      (p.half_closed ? " · finished sending" : "") + where;
    if (growing) {
      li.classList.add("growing");
      figures.textContent += " ⚠ not reading";
    }
    if (p.tls) {
      const lock = document.createElement("span");
      lock.className = "lock";
      lock.textContent = "🔒";
      lock.title = [
        `${p.tls.version} ${p.tls.cipher}`,
        p.tls.peer_cert_subject ? `certificate: ${p.tls.peer_cert_subject}` : "certificate not verified",
        p.tls.peer_cert_sha256 ? `SHA-256: ${p.tls.peer_cert_sha256}` : "",
      ].filter(Boolean).join("\n");
      lock.setAttribute("aria-label", `TLS: ${lock.title}`);
      li.append(button, lock, figures);
    } else {
      li.append(button, figures);
    }
    return li;
  }

  async change(what) {
    const steps = what === "reconnect" ? ["disconnect", "connect"] : [what];
    for (const step of steps) {
      const response = await fetch(`api/connection/${step}`, { method: "POST" });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        this.onError(body.detail || `${step} answered ${response.status}`);
        return;
      }
    }
  }

  stale() {
    this.el.classList.add("stale"); // webchat is unreachable: these figures are old
  }

  fresh() {
    this.el.classList.remove("stale");
  }
}

function item(cls, text) {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text;
  return li;
}

function time(ts) {
  return new Date(ts).toLocaleTimeString([], { hour12: false });
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
