import { callApi } from "./api.js";

// The auto-responder's rules, edited on the page: each rule with its hits, a switch and ×;
// a small form adds one ("when a line matches" or "every N seconds", and the reply).
// The server keeps them (GET/POST/PATCH/DELETE /api/rules); every page sees the same.

export class RulesPanel {
  constructor(el, { say }) {
    this.el = el;
    this.say = say;
    this.list = el.querySelector("#rule-list");
    this.form = el.querySelector("#rule-form");
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.add();
    });
    el.addEventListener("toggle", () => el.open && this.load());
    this.load();
  }

  async load() {
    const { ok, answer } = await callApi("api/rules", "GET");
    if (ok) this.list.replaceChildren(...answer.rules.map((r) => this.item(r)));
  }

  item(rule) {
    const li = document.createElement("li");
    li.className = "rule";
    const on = document.createElement("input");
    on.type = "checkbox";
    on.checked = rule.enabled;
    on.setAttribute("aria-label", `Rule ${rule.id} enabled`);
    on.addEventListener("change", () => this.call(`api/rules/${rule.id}`, "PATCH", { enabled: on.checked }));
    const words = document.createElement("span");
    const when = rule.match !== null ? `when /${rule.match}/` : `every ${rule.every} s`;
    words.textContent = `${when} → ${rule.reply}` + (rule.peer ? ` (${rule.peer})` : "") + ` · ${rule.hits} hits`;
    const drop = document.createElement("button");
    drop.type = "button";
    drop.textContent = "×";
    drop.setAttribute("aria-label", `Delete rule ${rule.id}`);
    drop.addEventListener("click", async () => (await this.call(`api/rules/${rule.id}`, "DELETE")) && this.load());
    li.append(on, words, drop);
    return li;
  }

  async add() {
    const match = this.form.querySelector("#rule-match").value;
    const every = this.form.querySelector("#rule-every").value;
    const reply = this.form.querySelector("#rule-reply").value;
    const body = { reply };
    if (match) body.match = match;
    if (every) body.every = Number(every);
    if (await this.call("api/rules", "POST", body)) {
      this.form.reset();
      this.load();
    }
  }

  async call(url, method, body = null) {
    const { ok, why } = await callApi(url, method, body);
    this.say(ok ? "" : `rule not saved: ${why}`);
    return ok;
  }
}
