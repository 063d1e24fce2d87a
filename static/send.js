// The entry and its Send button. Text stays in the entry until the server says the send
// was kept and written (`sent`); a refusal leaves it there with the reason under it.
// Up and Down recall earlier sends, kept in this browser.

const HISTORY = "webchat.history";
const NAME = "webchat.name";
const HISTORY_MOST = 100;

export class Sender {
  constructor(form, { socket, target }) {
    this.form = form;
    this.socket = socket;
    this.target = target; // () => the peer chosen in "To", or null for all
    this.entry = form.querySelector("#entry");
    this.mode = form.querySelector("#send-mode");
    this.ending = form.querySelector("#line-ending");
    this.error = document.getElementById("send-error");
    this.waiting = new Map(); // send id -> the text it carried
    this.nextId = 1;
    this.history = load();
    this.recalled = this.history.length;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.name = form.querySelector("#chat-name");
    this.name.value = localStorage.getItem(NAME) || "";
    this.name.addEventListener("change", () => localStorage.setItem(NAME, this.name.value));
    this.fileButton = form.querySelector("#send-file");
    this.file = form.querySelector("#file");
    // A label, not a button, opens the file chooser: "Send" stays the one button of its name.
    this.fileButton.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        this.file.click();
      }
    });
    this.file.addEventListener("change", () => this.sendFile());
    this.entry.addEventListener("keydown", (ev) => this.key(ev));
    this.entry.addEventListener("input", () => this.fit());
    this.mode.addEventListener("change", () => {
      this.entry.placeholder = {
        text: "Type a message; Enter sends, Shift+Enter adds a line",
        escapes: "Text with \\r \\n \\t \\0 \\xNN \\\\ escapes",
        hex: "Hex bytes, e.g. de ad be ef",
      }[this.mode.value];
    });
  }

  submit() {
    const text = this.entry.value;
    if (text === "") return; // Enter on an empty entry sends nothing
    const id = `s${this.nextId++}`;
    const frame = { type: "send", id };
    if (this.mode.value === "hex") frame.hex = text;
    else frame.text = text;
    if (this.mode.value === "escapes") frame.escapes = true;
    if (this.ending.value !== "framing") frame.line_ending = this.ending.value;
    const to = this.target();
    if (to) frame.to = to;
    if (!this.name.hidden && this.name.value) frame.name = this.name.value;
    if (!this.socket.send(frame)) {
      this.say("webchat is unreachable; your text is kept: send again once it is back");
      return;
    }
    this.waiting.set(id, text);
    this.say("");
  }

  // The server's answer to a send with an id; `error` frames without one are shown too.
  reply(frame) {
    const text = this.waiting.get(frame.id);
    this.waiting.delete(frame.id);
    if (frame.type === "sent") {
      if (text !== undefined) this.remember(text);
      if (text !== undefined && this.entry.value === text) {
        this.entry.value = "";
        this.fit();
      }
    } else if (frame.type === "error") {
      this.say(frame.detail);
    }
  }

  // A file goes by POST /api/messages/file, streamed: the server writes it at the peer's
  // pace and records it in pieces, so the page never holds more than the browser's File.
  async sendFile() {
    const file = this.file.files[0];
    if (!file) return;
    const to = this.target();
    const url = "api/messages/file" + (to ? `?to=${encodeURIComponent(to)}` : "");
    this.fileButton.setAttribute("aria-disabled", "true");
    this.file.disabled = true;
    this.say(`sending ${file.name} (${file.size} bytes)…`, true);
    try {
      const response = await fetch(url, {
        method: "POST",
        body: file,
        headers: { "Content-Type": "application/octet-stream" },
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        this.say(`sent ${file.name}: ${body.bytes} bytes in ${body.messages} messages`, true);
      } else {
        this.say(`${file.name} not sent: ${body.detail || `answered ${response.status}`}`);
      }
    } catch {
      this.say(`${file.name}: webchat is unreachable; the transcript shows what went out`);
    } finally {
      this.fileButton.removeAttribute("aria-disabled");
      this.file.disabled = false;
      this.file.value = ""; // the same file can be chosen again
    }
  }

  // --chat: the room shows who speaks, so the page asks for a name (kept in this browser).
  chat(on) {
    this.name.hidden = !on;
  }

  say(text, note = false) {
    this.error.textContent = text;
    this.error.hidden = !text;
    this.error.classList.toggle("note", note);
  }

  remember(text) {
    if (this.history[this.history.length - 1] !== text) this.history.push(text);
    this.history = this.history.slice(-HISTORY_MOST);
    this.recalled = this.history.length;
    try {
      localStorage.setItem(HISTORY, JSON.stringify(this.history));
    } catch {
      // private mode or a full quota: the history lives for this page only
    }
  }

  key(ev) {
    const entry = this.entry;
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.submit();
    } else if (ev.key === "ArrowUp" && !entry.value.slice(0, entry.selectionStart).includes("\n")) {
      if (this.recalled > 0) this.recall(this.recalled - 1, ev);
    } else if (ev.key === "ArrowDown" && !entry.value.slice(entry.selectionEnd).includes("\n")) {
      if (this.recalled < this.history.length) this.recall(this.recalled + 1, ev);
    }
  }

  recall(at, ev) {
    ev.preventDefault();
    this.recalled = at;
    this.entry.value = this.history[at] ?? "";
    this.fit();
  }

  fit() {
    this.entry.style.height = "auto";
    this.entry.style.height = Math.min(this.entry.scrollHeight, 160) + "px";
  }
}

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(HISTORY) || "[]");
    return Array.isArray(saved) ? saved.filter((x) => typeof x === "string") : [];
  } catch {
    return [];
  }
}
