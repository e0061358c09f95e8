// One session's transcript: messages by seq, live deltas by revision/offset (Unicode scalar values), and each
// answer's tool calls (full payloads from the admin detail, name and status live from `tool` events).

import { chars, clear, h, timeEl } from "./dom.js";
import { renderToolCalls } from "./toolcalls.js";

/** The fields of a live `tool` event or of the visible part (`tools`) that describe a call. */
function visiblePart(call) {
  const out = {};
  for (const key of ["call_id", "name", "status", "display"]) if (call[key] !== undefined) out[key] = call[key];
  return out;
}

export class Transcript {
  constructor(root) {
    this.root = root;
    this.entries = new Map(); // seq → {message, chars, revision, el, meta, content, tools, calls, toolEls}
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
    // The visible part first, then the full records (agents' view) over it.
    if (Array.isArray(message.tools)) this.mergeCalls(entry, message.tools.map(visiblePart));
    if (Array.isArray(message.tool_calls)) this.mergeCalls(entry, message.tool_calls);
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

  /**
   * A `tool` event: a call of the running turn started or changed. Its answer is found by the turn
   * (stream_start), else it is the answer still streaming (a live view opened mid-turn).
   */
  tool(event) {
    let seq = this.turns.get(event.turn_id);
    if (seq === undefined) {
      const streaming = [...this.entries.values()]
        .filter((e) => e.message.role === "assistant" && e.message.status === "streaming");
      if (streaming.length) seq = streaming[streaming.length - 1].message.seq;
    }
    const entry = seq !== undefined ? this.entries.get(seq) : null;
    if (!entry || !event.call_id) return;
    this.mergeCalls(entry, [visiblePart(event)]);
    this.paintTools(entry);
  }

  /** The full records of an answer's calls (from a fresh admin detail), over what is shown. */
  setToolCalls(seq, calls) {
    const entry = this.entries.get(seq);
    if (!entry || !Array.isArray(calls)) return;
    this.mergeCalls(entry, calls);
    this.paintTools(entry);
  }

  /** True when an answer has tool calls whose arguments are not known yet (shown from live events only). */
  hasPartialCalls(seq) {
    const entry = this.entries.get(seq);
    return !!entry && [...entry.calls.values()].some((c) => !Object.prototype.hasOwnProperty.call(c, "arguments"));
  }

  mergeCalls(entry, calls) {
    for (const call of calls) {
      if (!call || typeof call !== "object" || !call.call_id) continue;
      entry.calls.set(call.call_id, { ...(entry.calls.get(call.call_id) || {}), ...call });
    }
  }

  create(seq) {
    const el = h("article", { class: "msg" });
    const meta = h("div", { class: "meta" });
    const content = h("p", { class: "content" });
    const tools = h("ul", { class: "tools", "aria-label": "Tool calls", hidden: true });
    el.append(meta, tools, content);
    const entry = { message: { seq }, chars: [], revision: 0, el, meta, content, tools, calls: new Map(), toolEls: new Map() };
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

  /** Tool calls: the full payloads agents get (`tool_calls`), else what is known so far. */
  paintTools(entry) {
    const following = this.atEnd();
    renderToolCalls(entry.tools, [...entry.calls.values()], entry.toolEls);
    this.scrollToEnd(following);
  }

  atEnd() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 40;
  }

  scrollToEnd(follow) {
    if (follow) this.root.scrollTop = this.root.scrollHeight;
  }
}
