// DOM helpers for the console: build elements without innerHTML, format times and ids, show errors.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Sets attributes and properties of an element from a plain object. */
function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** `h("td", {class: "num"}, "12")`: an HTML element; strings become text nodes. */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** The same for SVG elements (createElementNS). */
export function s(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** The last 8 characters of a UUID, as people read them: its random end.
 * Session ids are time-ordered (v7), so the ids of sessions made within the
 * same minute share their first characters. */
export function shortId(id) {
  return String(id || "").slice(-8);
}

const FULL = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const DAY_CLOCK = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const DATE = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

/** Short for tables: the time today, the day and time this year, else the date. */
function compact(d) {
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return CLOCK.format(d);
  if (d.getFullYear() === now.getFullYear()) return DAY_CLOCK.format(d);
  return DATE.format(d);
}

/** A `<time>` element showing an RFC 3339 instant in the browser's time zone (in full as its title). */
export function timeEl(iso) {
  if (!iso) return h("span", { class: "muted", text: "–" });
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", { text: iso });
  return h("time", { datetime: iso, title: FULL.format(d), text: compact(d) });
}

export function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso || "") : FULL.format(d);
}

const INT = new Intl.NumberFormat(undefined);
export function formatInt(n) {
  return INT.format(Number(n) || 0);
}

export function formatUsd(n) {
  const v = Number(n) || 0;
  if (v === 0) return "$0";
  if (v < 0.01) return `$${v.toPrecision(2)}`;
  return `$${v.toFixed(2)}`;
}

/** Shows a sentence in an error line (role="alert"), or hides it with `null`. */
export function showError(el, message) {
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = message;
  el.hidden = false;
}

/** A status badge: `<span class="badge" data-status="human">human</span>`. */
export function badge(status) {
  return h("span", { class: "badge", dataset: { status }, text: status });
}

/** Who owns a session, for people: the user id, or "visitor" and a short id. */
export function ownerLabel(session) {
  if (session.user_id) return session.user_id;
  const owner = String(session.owner || "");
  if (owner.startsWith("visitor:")) return `visitor ${shortId(owner.slice(8))}`;
  return owner || "unknown";
}

/** Characters as the protocol counts them: Unicode scalar values. */
export function chars(text) {
  return Array.from(String(text || ""));
}
