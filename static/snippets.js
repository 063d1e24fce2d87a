import { callApi } from "./api.js";

// Saved messages as a row of buttons above the entry: a click sends one (to the peer in
// "To"), "Save as snippet" keeps what is in the entry, × deletes. They live in the
// transcript file, so every page of this webchat shares them (GET /api/snippets).

export class SnippetBar {
  constructor(el, { target, entry, mode, say }) {
    this.el = el;
    this.target = target;
    this.entry = entry;
    this.mode = mode;
    this.say = say;
    this.list = el.querySelector("#snippet-list");
    el.querySelector("#save-snippet").addEventListener("click", () => this.save());
    this.load();
  }

  async load() {
    const { ok, answer } = await callApi("api/snippets", "GET");
    if (ok) this.list.replaceChildren(...answer.snippets.map((s) => this.item(s)));
  }

  item(snippet) {
    const li = document.createElement("li");
    const use = document.createElement("button");
    use.type = "button";
    use.className = "snippet";
    use.textContent = snippet.name;
    use.title = snippet.text ?? `hex ${snippet.hex}`;
    use.addEventListener("click", () => this.use(snippet));
    const drop = document.createElement("button");
    drop.type = "button";
    drop.className = "drop";
    drop.textContent = "×";
    drop.setAttribute("aria-label", `Delete snippet ${snippet.name}`);
    drop.addEventListener("click", () => this.drop(snippet));
    const change = document.createElement("button");
    change.type = "button";
    change.className = "drop";
    change.textContent = "✎";
    change.setAttribute("aria-label", `Edit snippet ${snippet.name}`);
    change.addEventListener("click", () => this.edit(snippet));
    li.append(use, change, drop);
    return li;
  }

  async use(snippet) {
    const to = this.target();
    await this.call(`api/snippets/${snippet.id}/send`, "POST", to ? { to } : {}, `${snippet.name} not sent`);
  }

  async save() {
    const body = this.entry.value;
    if (!body) {
      this.say("type the message to save in the entry first");
      return;
    }
    const name = window.prompt("Name for this snippet", body.slice(0, 20));
    if (!name) return;
    const fields = this.mode.value === "hex" ? { name, hex: body } : { name, text: body };
    if (await this.call("api/snippets", "POST", fields, "not saved")) this.load();
  }

  async edit(snippet) {
    const kind = snippet.hex !== null ? "hex" : "text";
    const now = window.prompt(`New ${kind} for ${snippet.name}`, snippet[kind]);
    if (now === null) return;
    if (await this.call(`api/snippets/${snippet.id}`, "PATCH", { [kind]: now }, "not changed")) this.load();
  }

  async drop(snippet) {
    if (await this.call(`api/snippets/${snippet.id}`, "DELETE", null, "not deleted")) this.load();
  }

  async call(url, method, body, failure) {
    const { ok, why } = await callApi(url, method, body);
    this.say(ok ? "" : `${failure}: ${why}`);
    return ok;
  }
}
