// Canned replies typed after "/" in Reply: a built-in set plus the agent's own (localStorage), as a listbox.

import { $, h } from "./dom.js";

const STORE_KEY = "switchboard.console.canned";
/** At most this many suggestions (the list never scrolls: typing narrows it). */
const MAX_SHOWN = 6;

/** The built-in set; `{agent}` becomes the signed-in agent's display name. */
export const BUILT_IN = [
  { name: "hello", text: "Hi, this is {agent}. I'm taking over from the assistant: how can I help?" },
  { name: "moment", text: "Thanks! Give me a moment to check that for you." },
  { name: "order", text: "Could you tell me your order number, please?" },
  { name: "email", text: "Could you give me the email address you used for your order?" },
  { name: "anything", text: "Is there anything else I can help you with?" },
  { name: "handback", text: "I'm handing you back to our assistant now. Write again if you need me." },
  { name: "bye", text: "Thanks for chatting with us. Have a great day!" },
];

function loadSaved() {
  try {
    const list = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(list) ? list.filter((c) => c && typeof c.name === "string" && typeof c.text === "string") : [];
  } catch {
    return [];
  }
}

function storeSaved(list) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(list));
    return true;
  } catch {
    return false;
  }
}

/** A shortcut name from a reply's first words: "Could you check" → "could-you-check". */
function slug(text) {
  const words = text.toLowerCase().normalize("NFKD").replace(/[^\p{L}\p{N}\s-]/gu, "").split(/\s+/).filter(Boolean);
  return words.slice(0, 3).join("-").slice(0, 32) || "reply";
}

export class CannedReplies {
  /** `agentName()`: the name put in place of {agent}. */
  constructor(textarea, agentName) {
    this.input = textarea;
    this.agentName = agentName;
    this.list = $("canned-list");
    this.status = $("canned-status");
    this.savedList = $("canned-saved");
    this.matches = [];
    this.active = 0;
    textarea.addEventListener("input", () => this.update());
    textarea.addEventListener("click", () => this.update());
    textarea.addEventListener("keydown", (e) => this.onKey(e));
    textarea.addEventListener("blur", () => this.close());
    this.list.addEventListener("mousedown", (e) => e.preventDefault()); // keep focus in Reply
    this.list.addEventListener("click", (e) => {
      const option = e.target instanceof Element ? e.target.closest("[role=option]") : null;
      if (option) this.insert(Number(option.dataset.index));
    });
    $("save-canned").addEventListener("click", () => this.saveCurrent());
    this.renderSaved();
  }

  all() {
    return [...BUILT_IN, ...loadSaved()];
  }

  /** The "/word" being typed at the start of Reply, up to the caret; null when none. */
  token() {
    const before = this.input.value.slice(0, this.input.selectionStart ?? 0);
    const m = /^\/(\S*)$/.exec(before);
    return m ? m[1].toLowerCase() : null;
  }

  update() {
    const q = this.token();
    if (q === null) {
      this.close();
      return;
    }
    this.matches = this.all().filter((c) => c.name.toLowerCase().includes(q) || c.text.toLowerCase().includes(q))
      .slice(0, MAX_SHOWN);
    this.active = 0;
    this.render();
  }

  isOpen() {
    return !this.list.hidden;
  }

  render() {
    if (!this.matches.length) {
      this.close();
      this.status.textContent = "No canned reply matches.";
      return;
    }
    const options = this.matches.map((c, i) =>
      h("li", {
        role: "option", id: `canned-${i}`, "aria-selected": i === this.active ? "true" : "false",
        dataset: { index: String(i) }, class: "option",
      }, h("span", { class: "shortcut", text: `/${c.name}` }), " ", h("span", { text: this.fill(c.text) })));
    this.list.replaceChildren(...options);
    this.list.hidden = false;
    this.input.setAttribute("aria-activedescendant", `canned-${this.active}`);
    const n = this.matches.length;
    this.status.textContent = `${n} canned ${n === 1 ? "reply" : "replies"}: arrow keys choose, Enter inserts, Escape closes.`;
  }

  move(step) {
    const n = this.matches.length;
    this.active = (this.active + step + n) % n;
    for (const [i, el] of [...this.list.children].entries()) {
      el.setAttribute("aria-selected", i === this.active ? "true" : "false");
    }
    this.input.setAttribute("aria-activedescendant", `canned-${this.active}`);
    this.list.children[this.active]?.scrollIntoView({ block: "nearest" });
  }

  close() {
    this.list.hidden = true;
    this.list.replaceChildren();
    this.input.removeAttribute("aria-activedescendant");
  }

  fill(text) {
    return text.replaceAll("{agent}", this.agentName() || "Agent");
  }

  /** Puts a canned reply in place of the "/word" typed. */
  insert(index) {
    const c = this.matches[index];
    if (!c) return;
    const caret = this.input.selectionStart ?? 0;
    const rest = this.input.value.slice(caret);
    const text = this.fill(c.text);
    this.input.value = text + rest;
    this.input.setSelectionRange(text.length, text.length);
    this.close();
    this.status.textContent = `Inserted /${c.name}.`;
    this.input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  onKey(e) {
    if (!this.isOpen()) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      this.move(e.key === "ArrowDown" ? 1 : -1);
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.insert(this.active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.close();
    }
  }

  /** Saves what Reply holds as a canned reply of this browser. */
  saveCurrent() {
    const text = this.input.value.trim();
    if (!text || text.startsWith("/")) {
      this.status.textContent = "Write the reply first, then save it.";
      return;
    }
    const saved = loadSaved();
    const taken = new Set(this.all().map((c) => c.name));
    let name = slug(text);
    for (let i = 2; taken.has(name); i += 1) name = `${slug(text)}-${i}`;
    saved.push({ name, text });
    this.status.textContent = storeSaved(saved) ? `Saved as /${name}.` : "This browser refused to save it.";
    this.renderSaved();
  }

  remove(name) {
    storeSaved(loadSaved().filter((c) => c.name !== name));
    this.status.textContent = `Deleted /${name}.`;
    this.renderSaved();
  }

  renderSaved() {
    const saved = loadSaved();
    const items = saved.map((c) => h("li", {},
      h("span", { class: "shortcut", text: `/${c.name}` }), " ", h("span", { class: "saved-text", text: c.text }), " ",
      h("button", {
        type: "button", class: "ghost small", text: "Delete", "aria-label": `Delete canned reply /${c.name}`,
        onclick: () => this.remove(c.name),
      })));
    if (!items.length) items.push(h("li", { class: "muted", text: "None yet: write a reply and press Save as canned reply." }));
    this.savedList.replaceChildren(...items);
  }
}
