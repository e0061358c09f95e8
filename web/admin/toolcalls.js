// The tool calls of one assistant message (SPEC §16), as agents see them: a list with one disclosure
// per call, its name and status always visible, and arguments, result, error, what the visitor was shown
// and timing inside, all as text (pretty-printed JSON, never HTML from the data).

import { h, timeEl } from "./dom.js";

/** Words for a call's status, read after its name. */
const STATUS_TEXT = {
  running: "running",
  done: "done",
  error: "error",
  shown: "shown",
  verified: "verified",
  unverified: "unverified",
};

/** JSON as people read it; a string as it is (the text a model or a server wrote). */
function pretty(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A labelled block of text: a figure whose caption names it, with a scrollable, focusable <pre>. */
function part(label, value, { note, kind = "json" } = {}) {
  return h("figure", { class: "tool-part", dataset: { part: kind } },
    h("figcaption", {}, label, note ? h("span", { class: "muted", text: ` (${note})` }) : null),
    h("pre", { class: "json", tabindex: "0", text: pretty(value) }));
}

function summaryParts(call) {
  const status = call.status || "running";
  return [
    h("span", { class: "tool-label", text: "Tool call " }),
    h("code", { class: "tool-name", text: call.name || "?" }),
    " · ",
    h("span", { class: "tstatus", dataset: { status }, text: STATUS_TEXT[status] || status }),
    typeof call.duration_ms === "number" ? ` · ${call.duration_ms} ms` : null,
  ];
}

function bodyParts(call) {
  const has = (key) => Object.prototype.hasOwnProperty.call(call, key);
  const facts = [
    ["Call id", call.call_id ? h("code", { text: call.call_id }) : null],
    ["Started", call.started_at ? timeEl(call.started_at) : null],
    ["Duration", typeof call.duration_ms === "number" ? `${call.duration_ms} ms` : null],
  ].filter(([, v]) => v !== null);
  const out = [
    facts.length ? h("dl", { class: "tool-facts" }, facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])) : null,
    call.error ? h("p", { class: "tool-error" }, h("strong", { text: "Error: " }), String(call.error)) : null,
  ];
  if (has("arguments")) {
    out.push(typeof call.arguments === "string"
      ? part("Arguments", call.arguments, { note: "not JSON: as the model wrote them", kind: "arguments" })
      : part("Arguments", call.arguments, { kind: "arguments" }));
  }
  if (has("result") && call.result !== null && call.result !== undefined) {
    out.push(part("Result", call.result, { note: "what the model got", kind: "result" }));
  }
  if (call.display) out.push(part("Shown to the visitor", call.display, { kind: "display" }));
  if (!has("arguments")) {
    out.push(h("p", { class: "muted tool-pending", text: "Arguments and result come when the answer is finished." }));
  }
  return out;
}

/**
 * Keeps the list `ul` in step with `calls` (in order), updating each call's element in place so
 * an open disclosure stays open and keyboard focus stays where it is.
 */
export function renderToolCalls(ul, calls, els) {
  const keep = new Set();
  let i = 0;
  for (const call of calls) {
    const id = call.call_id || `#${i}`;
    keep.add(id);
    let el = els.get(id);
    if (!el) {
      const summary = h("summary", {});
      const body = h("div", { class: "tool-body" });
      const details = h("details", { class: "tool" }, summary, body);
      el = { li: h("li", {}, details), details, summary, body };
      els.set(id, el);
    }
    el.details.dataset.callId = call.call_id || "";
    el.details.dataset.status = call.status || "running";
    el.summary.replaceChildren(...summaryParts(call).filter(Boolean));
    el.body.replaceChildren(...bodyParts(call).filter(Boolean));
    // Into its place, moving only what is out of order (a moved element would lose focus).
    const at = ul.children[i] || null;
    if (at !== el.li) ul.insertBefore(el.li, at);
    i += 1;
  }
  for (const [id, el] of els) {
    if (!keep.has(id)) {
      el.li.remove();
      els.delete(id);
    }
  }
  ul.hidden = calls.length === 0;
}
