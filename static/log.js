// The log: a window onto the transcript, never the whole of it.
//
// Memory holds one slice of the transcript (at most MEMORY entries, contiguous in id order
// for the active search); the DOM holds at most ROWS of them, the ones around the view.
// Scrolling past either end renders more from the slice, or fetches a page from the API,
// so a million entries scroll in constant memory. Arriving entries are applied at most
// once per animation frame, as one batch, and only the rows that stay on screen are built.
import { clock, eventWords, matches, shown, VIEWS } from "./views.js";

const MEMORY = 3000;
const ROWS = 300;
const STEP = 100; // rows built or dropped at a time while scrolling
const PAGE = 500; // entries per API page
const NEAR = 150; // px from an edge that counts as being at it

export class Log {
  constructor(el, { role, newButton, onError }) {
    this.el = el;
    this.role = role;
    this.newButton = newButton;
    this.onError = onError;
    this.query = "";
    this.hexAll = false;
    this.views = new Map(); // entry id -> the view chosen for that row
    this.selected = 0;
    this.columns = 80;
    this.incoming = [];
    this.frame = 0;
    this.newestLive = 0;
    this.busy = false;
    this.reset();
    el.addEventListener("scroll", () => this.scrolled());
    el.addEventListener("click", (ev) => {
      const row = ev.target.closest(".row");
      if (row) this.select(Number(row.dataset.id));
    });
    el.addEventListener("keydown", (ev) => this.key(ev));
    newButton.addEventListener("click", () => this.toEnd());
    new ResizeObserver(() => this.measure()).observe(el);
  }

  reset() {
    this.slice = [];
    this.first = 0; // slice index of the first row in the DOM
    this.last = 0; // slice index after the last row in the DOM
    this.atStart = false; // nothing older than the slice
    this.atHead = true; // the slice ends at the newest entry: live entries extend it
    this.following = true;
    this.unseen = 0;
    this.el.replaceChildren();
    this.showUnseen();
  }

  // Live entries from the socket, in id order; applied on the next animation frame.
  push(entries) {
    for (const e of entries) this.newestLive = Math.max(this.newestLive, e.id);
    this.incoming.push(...entries);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.apply());
  }

  apply() {
    this.frame = 0;
    let arrived = this.incoming;
    this.incoming = [];
    const cleared = arrived.findLastIndex((e) => e.kind === "cleared");
    if (cleared >= 0) {
      this.reset(); // the transcript was emptied: so is the log, from its `cleared` entry on
      this.atStart = true;
      arrived = arrived.slice(cleared);
    }
    const batch = arrived.filter((e) => matches(e, this.query));
    if (!batch.length) return;
    if (this.atHead && (this.following || this.slice.length + batch.length <= MEMORY)) {
      this.slice.push(...batch); // trimmed once the rows on screen are settled
    } else {
      this.atHead = false; // newer entries than the slice exist: fetched when scrolled to
    }
    if (this.following && this.atHead) {
      this.showTail();
    } else {
      this.unseen += batch.length;
      this.showUnseen();
    }
  }

  // Forget the oldest entries beyond MEMORY, but never one whose row is in the DOM.
  trimFront() {
    const over = Math.min(this.slice.length - MEMORY, this.first);
    if (over <= 0) return;
    this.slice.splice(0, over);
    this.first -= over;
    this.last -= over;
    this.atStart = false;
  }

  // The newest rows, scrolled to the bottom: built only for what stays in the DOM.
  showTail() {
    const from = Math.max(0, this.slice.length - ROWS);
    if (from >= this.last) {
      this.el.replaceChildren(...this.slice.slice(from).map((e) => this.row(e)));
    } else {
      this.el.append(...this.slice.slice(this.last).map((e) => this.row(e)));
      this.dropTop(this.el.childElementCount - ROWS);
    }
    this.last = this.slice.length;
    this.first = this.last - this.el.childElementCount;
    this.trimFront();
    this.el.scrollTop = this.el.scrollHeight;
    this.unseen = 0;
    this.showUnseen();
  }

  dropTop(count) {
    for (let i = 0; i < count && this.el.firstElementChild; i++) {
      this.el.firstElementChild.remove();
      this.first += 1;
    }
  }

  dropBottom(count) {
    for (let i = 0; i < count && this.el.lastElementChild; i++) {
      this.el.lastElementChild.remove();
      this.last -= 1;
    }
  }

  // Rows built above the view keep the rows the user reads where they are.
  prependRows(entries) {
    const before = this.el.scrollHeight;
    this.el.prepend(...entries.map((e) => this.row(e)));
    this.el.scrollTop += this.el.scrollHeight - before;
  }

  scrolled() {
    const el = this.el;
    const gap = el.scrollHeight - el.scrollTop - el.clientHeight;
    this.following = gap < 40 && this.atHead && this.last === this.slice.length;
    if (this.following && this.unseen) {
      this.unseen = 0;
      this.showUnseen();
    }
    if (el.scrollTop < NEAR) this.up();
    else if (gap < NEAR) this.down();
  }

  async up() {
    if (this.busy) return;
    if (this.first === 0 && !this.atStart) {
      await this.fetchPage({ before: this.slice.length ? this.slice[0].id : undefined }, "older");
    }
    const count = Math.min(STEP, this.first);
    if (!count) return;
    this.first -= count;
    this.prependRows(this.slice.slice(this.first, this.first + count));
    this.dropBottom(this.last - this.first - ROWS);
  }

  async down() {
    if (this.busy) return;
    if (this.last === this.slice.length && !this.atHead && this.slice.length) {
      await this.fetchPage({ after: this.slice[this.slice.length - 1].id }, "newer");
    }
    const count = Math.min(STEP, this.slice.length - this.last);
    if (!count) return;
    const before = this.el.scrollHeight - this.el.scrollTop;
    this.el.append(...this.slice.slice(this.last, this.last + count).map((e) => this.row(e)));
    this.last += count;
    const over = this.last - this.first - ROWS;
    if (over > 0) {
      this.dropTop(over);
      this.el.scrollTop = this.el.scrollHeight - before;
    }
  }

  // One page from the API into the slice, older (before) or newer (after) than it.
  async fetchPage(where, side) {
    this.busy = true;
    try {
      const page = await this.fetchEntries(where);
      if (side === "older") {
        this.atStart = page.next === null;
        this.slice.unshift(...page.messages);
        this.first += page.messages.length;
        this.last += page.messages.length;
        const over = this.slice.length - MEMORY;
        if (over > 0) {
          this.slice.splice(this.slice.length - over, over);
          this.atHead = false;
          if (this.last > this.slice.length) this.dropBottom(this.last - this.slice.length);
        }
      } else {
        this.slice.push(...page.messages);
        const newest = this.slice.length ? this.slice[this.slice.length - 1].id : 0;
        this.atHead = page.next === null && newest >= this.newestLive;
        this.trimFront();
      }
    } catch (err) {
      this.onError(`Could not load entries: ${err.message}`);
    } finally {
      this.busy = false;
    }
  }

  async fetchEntries({ before, after }) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (before !== undefined) params.set("before", String(before));
    else if (after !== undefined) params.set("after", String(after));
    else params.set("before", "9223372036854775807"); // the newest page
    if (this.query) params.set("q", this.query);
    const response = await fetch("api/messages?" + params);
    if (!response.ok) throw new Error(`the transcript answered ${response.status}`);
    return response.json();
  }

  // The newest page again (a new search, or the "N new" button far from the head).
  async reload() {
    this.busy = true;
    let page;
    try {
      page = await this.fetchEntries({});
    } catch (err) {
      this.onError(`Could not load entries: ${err.message}`);
      return;
    } finally {
      this.busy = false;
    }
    this.reset();
    this.slice = page.messages;
    this.atStart = page.next === null;
    const newest = this.slice.length ? this.slice[this.slice.length - 1].id : 0;
    const later = this.incoming.filter((e) => e.id > newest);
    this.incoming = later;
    this.showTail();
    if (later.length) this.push([]);
  }

  async toEnd() {
    if (this.atHead) {
      this.following = true;
      this.showTail();
    } else {
      await this.reload();
    }
  }

  async toStart() {
    this.busy = true;
    try {
      const page = await this.fetchEntries({ after: 0 });
      this.reset();
      this.slice = page.messages;
      this.atStart = true;
      this.atHead = page.next === null;
      this.following = false;
      this.last = Math.min(ROWS, this.slice.length);
      this.el.append(...this.slice.slice(0, this.last).map((e) => this.row(e)));
      this.el.scrollTop = 0;
    } catch (err) {
      this.onError(`Could not load entries: ${err.message}`);
    } finally {
      this.busy = false;
    }
  }

  search(query) {
    this.query = query;
    return this.reload();
  }

  showUnseen() {
    this.newButton.hidden = this.unseen === 0;
    this.newButton.textContent = `${this.unseen.toLocaleString()} new ↓`;
  }

  row(e) {
    const el = document.createElement("div");
    el.dataset.id = String(e.id);
    const time = document.createElement("time");
    time.dateTime = e.ts;
    const [hms, ms] = clock(e.ts).split(".");
    time.append(hms, cell("ms", "." + ms));
    if (e.type === "message") {
      el.className = "row " + e.direction;
      const peer = e.peer || (e.direction === "out" ? "all" : "");
      // An automatic reply says which rule sent it: "auto" in place of "out".
      const dir = cell("dir", e.rule === undefined ? e.direction : "auto");
      if (e.rule !== undefined) dir.title = `sent by auto-responder rule ${e.rule} (GET /api/rules)`;
      // --chat: who said it, with the address on hover
      const who = cell("peer", e.name ? e.name : peer);
      if (e.name) who.title = peer;
      el.append(time, dir, who, cell("text", ""));
      el.lastChild.textContent = shown(e, this.viewOf(e), this.columns);
      el.title = peer;
    } else {
      el.className = "row event " + e.kind;
      el.append(time, cell("dir", "---"), cell("peer", e.peer || ""), cell("text", eventWords(e, this.role)));
    }
    if (e.id === this.selected) el.classList.add("selected");
    return el;
  }

  viewOf(e) {
    return this.views.get(e.id) || (this.hexAll ? "hex" : "text");
  }

  entryOf(id) {
    return this.slice.find((e) => e.id === id);
  }

  select(id) {
    this.el.querySelector(".row.selected")?.classList.remove("selected");
    this.selected = id;
    const row = this.el.querySelector(`.row[data-id="${id}"]`);
    row?.classList.add("selected");
    row?.scrollIntoView({ block: "nearest" });
    this.el.dispatchEvent(new CustomEvent("selected", { detail: this.entryOf(id) }));
  }

  // The view of one entry (text, escaped or hex), from the menu or a key on the selected row.
  setView(id, view) {
    const e = this.entryOf(id);
    if (!e || e.type !== "message") return;
    this.views.set(id, view);
    this.rerender((row) => Number(row.dataset.id) === id);
  }

  setHexAll(on) {
    this.hexAll = on;
    this.views.clear();
    this.rerender(() => true);
  }

  rerender(which) {
    for (const row of this.el.children) {
      if (!which(row)) continue;
      const e = this.entryOf(Number(row.dataset.id));
      if (e && e.type === "message") row.lastChild.textContent = shown(e, this.viewOf(e), this.columns);
    }
  }

  key(ev) {
    const rows = [...this.el.children];
    const at = rows.findIndex((r) => Number(r.dataset.id) === this.selected);
    const moves = { ArrowDown: 1, ArrowUp: -1 };
    if (ev.key in moves && rows.length) {
      const next = rows[Math.min(rows.length - 1, Math.max(0, at < 0 ? rows.length - 1 : at + moves[ev.key]))];
      this.select(Number(next.dataset.id));
    } else if (ev.key === "Home") {
      this.toStart();
    } else if (ev.key === "End") {
      this.toEnd();
    } else if ((ev.key === "v" || ev.key === "V") && this.selected) {
      const e = this.entryOf(this.selected);
      if (e && e.type === "message") {
        this.setView(e.id, VIEWS[(VIEWS.indexOf(this.viewOf(e)) + 1) % VIEWS.length]);
        this.el.dispatchEvent(new CustomEvent("selected", { detail: e }));
      }
    } else {
      return;
    }
    ev.preventDefault();
  }

  // How many characters the text column holds, for hex rows that fit it.
  measure() {
    const text = this.el.querySelector(".row .text");
    if (!text) return;
    const probe = cell("probe", "0".repeat(10));
    text.append(probe);
    const width = probe.getBoundingClientRect().width / 10;
    probe.remove();
    const columns = Math.max(16, Math.floor(text.clientWidth / (width || 8)));
    if (columns !== this.columns) {
      this.columns = columns;
      this.rerender(() => this.hexAll || this.views.size);
    }
  }
}

function cell(cls, text) {
  const el = document.createElement("span");
  el.className = cls;
  el.textContent = text;
  return el;
}
