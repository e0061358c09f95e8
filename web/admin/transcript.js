// One session's transcript: messages by seq, live deltas by revision/offset (Unicode scalar values), tool payloads.

import { chars, clear, h, timeEl } from "./dom.js";

/** What a tool call's summary line says. */
function toolSummary(call) {
  const parts = [`Tool call ${call.name || "?"}`];
  if (call.status) parts.push(call.status);
  if (typeof call.duration_ms === "number") parts.push(`${call.duration_ms} ms`);
  return parts.join(" · ");
}

function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export class Transcript {
  constructor(root) {
    this.root = root;
    this.entries = new Map(); // seq → {message, chars, revision, el, content, meta, tools}
    this.turns = new Map(); // turn_id → seq
  }

  /** Starts over with the messages of GET /v1/admin/sessions/{id} (oldest first). */
  reset(messages) {
    clear(this.root);
    this.entries.clear();
    this.turns.clear();
    for (const m of messages || []) this.upsert(m);
    this.scrollToEnd(true);
  }

  /** The highest seq shown whose message is final (no earlier message still streaming). */
  finalCursor() {
    let cursor = 0;
    const seqs = [...this.entries.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      if (this.entries.get(seq).message.status === "streaming") break;
      cursor = seq;
    }
    return seqs.length ? cursor : null;
  }

  /** A whole message (replay, new message, final state): replaces the one with its seq. */
  upsert(message) {
    if (!message || typeof message.seq !== "number") return;
    const following = this.atEnd();
    let entry = this.entries.get(message.seq);
    if (!entry) {
      entry = this.create(message.seq);
    }
    entry.message = { ...entry.message, ...message };
    entry.chars = chars(message.content);
    entry.revision = typeof message.revision === "number" ? message.revision : entry.revision || 0;
    if (Array.isArray(message.tool_calls) || Array.isArray(message.tools)) {
      entry.liveTools = new Map();
    }
    this.paint(entry);
    this.scrollToEnd(following);
  }

  /** stream_start: the assistant message exists (empty, streaming) before the provider answers. */
  start({ turn_id: turnId, seq }) {
    if (typeof seq !== "number") return;
    if (turnId) this.turns.set(turnId, seq);
    if (this.entries.has(seq)) return;
    this.upsert({ seq, role: "assistant", content: "", status: "streaming", author: null, revision: 0 });
  }

  /** stream_delta: true when applied (or a harmless repeat), false on a gap (the caller resyncs). */
  delta({ seq, revision = 0, offset = 0, text = "" }) {
    const entry = this.entries.get(seq);
    if (!entry) return false;
    if (revision < entry.revision) return true; // a delta of a replaced text: dropped
    if (revision > entry.revision) return false; // we missed the replace
    const have = entry.chars.length;
    const add = chars(text);
    if (offset > have) return false;
    if (offset + add.length <= have) return true; // already have all of it
    const following = this.atEnd();
    entry.chars = entry.chars.concat(add.slice(have - offset));
    entry.content.textContent = entry.chars.join("");
    this.scrollToEnd(following);
    return true;
  }

  /** stream_replace: the text so far is replaced; later deltas count from it. */
  replace({ seq, revision, text }) {
    const entry = this.entries.get(seq);
    if (!entry || revision <= entry.revision) return;
    entry.revision = revision;
    entry.chars = chars(text);
    entry.content.textContent = entry.chars.join("");
  }

  /** stream_end: the final message replaces the streaming one. */
  end({ seq, message }) {
    if (message) this.upsert(message);
    else if (this.entries.has(seq)) this.upsert({ ...this.entries.get(seq).message, status: "complete" });
  }

  /** A `tool` event: progress of a call in the running turn. */
  tool(event) {
    const seq = this.turns.get(event.turn_id);
    const entry = seq !== undefined ? this.entries.get(seq) : null;
    if (!entry) return;
    entry.liveTools = entry.liveTools || new Map();
    entry.liveTools.set(event.call_id, { ...(entry.liveTools.get(event.call_id) || {}), ...event });
    this.paintTools(entry);
  }

  create(seq) {
    const el = h("article", { class: "msg" });
    const meta = h("div", { class: "meta" });
    const content = h("p", { class: "content" });
    const tools = h("div", { class: "tools" });
    el.append(meta, content, tools);
    const entry = { message: { seq }, chars: [], revision: 0, el, meta, content, tools, liveTools: null };
    this.entries.set(seq, entry);
    // Keep seq order in the DOM.
    let before = null;
    for (const [other, e] of this.entries) {
      if (other > seq && (!before || other < Number(before.dataset.seq))) before = e.el;
    }
    el.dataset.seq = String(seq);
    this.root.insertBefore(el, before);
    return entry;
  }

  paint(entry) {
    const m = entry.message;
    const el = entry.el;
    el.dataset.seq = String(m.seq);
    el.dataset.role = m.role || "system";
    el.dataset.status = m.status || "complete";
    if (m.author) el.dataset.author = m.author;
    else delete el.dataset.author;
    el.setAttribute("aria-label", `${m.role || "message"} ${m.seq}`);
    const who = m.role === "agent" ? m.author || "Agent" : m.role;
    entry.meta.replaceChildren(...[
      h("span", { class: "role", text: m.role || "" }),
      m.author && m.role !== "agent" ? h("span", { class: "author", text: m.author }) : null,
      m.role === "agent" ? h("span", { class: "author", text: who }) : null,
      h("span", { class: "mstatus", dataset: { status: m.status || "complete" }, text: m.status || "" }),
      h("span", { class: "seq", text: `#${m.seq}` }),
      m.created_at ? timeEl(m.created_at) : null,
    ].filter(Boolean));
    entry.content.textContent = entry.chars.join("");
    this.paintTools(entry);
  }

  /** Tool calls: the full payloads agents get (`tool_calls`), else the visible part (`tools`). */
  paintTools(entry) {
    const m = entry.message;
    const calls = Array.isArray(m.tool_calls) && m.tool_calls.length ? m.tool_calls
      : Array.isArray(m.tools) ? m.tools : [];
    const byId = new Map(calls.map((c) => [c.call_id, c]));
    for (const [id, live] of entry.liveTools || []) byId.set(id, { ...(byId.get(id) || {}), ...live });
    const items = [...byId.values()].map((call) =>
      h("details", { class: "tool" },
        h("summary", { text: toolSummary(call) }),
        h("pre", { class: "json", text: pretty(call) })));
    entry.tools.replaceChildren(...items);
    entry.tools.hidden = items.length === 0;
  }

  atEnd() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 40;
  }

  scrollToEnd(follow) {
    if (follow) this.root.scrollTop = this.root.scrollHeight;
  }
}
