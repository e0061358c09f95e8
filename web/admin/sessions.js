// The sessions table: filters, sort, keyset paging, status badges, and a poll that keeps it current.

import { describe } from "./api.js";
import { $, badge, h, ownerLabel, shortId, showError, timeEl } from "./dom.js";
import { readFilters } from "./filters.js";

/** Rows per page. */
export const PAGE_SIZE = 25;
/** How often the current page is fetched again while the tab is visible (ms). */
export const POLL_MS = 5000;

export class SessionList {
  /** `ctx.api`: the Api; `onOpen(id)`: a row was chosen; `onSeen(session)`: a session as fetched. */
  constructor(ctx, onOpen, onSeen = () => {}) {
    this.ctx = ctx;
    this.onOpen = onOpen;
    this.onSeen = onSeen;
    this.form = $("filters");
    this.body = $("sessions-body");
    this.error = $("list-error");
    this.status = $("list-status");
    this.query = {};
    this.cursors = [null]; // cursors[i] fetches page i+1
    this.page = 0;
    this.nextCursor = null;
    this.generation = 0;
    this.inFlight = false;
    this.selected = null;
    this.seen = new Map(); // id → last_activity_at, to mark rows with new activity
    this.timer = null;
    this.active = false;

    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.reload();
    });
    this.form.addEventListener("change", () => this.reload());
    this.form.addEventListener("reset", () => setTimeout(() => this.reload(), 0));
    $("next-page").addEventListener("click", () => this.next());
    $("prev-page").addEventListener("click", () => this.previous());
    $("first-page").addEventListener("click", () => this.first());
    this.body.addEventListener("click", (e) => {
      const row = e.target instanceof Element ? e.target.closest("tr[data-id]") : null;
      if (row) this.onOpen(row.dataset.id);
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.active) this.refresh();
    });
  }

  /** Shows the list and starts polling. */
  start() {
    this.active = true;
    if (!this.timer) {
      this.timer = setInterval(() => {
        if (document.visibilityState === "visible") this.refresh();
      }, POLL_MS);
    }
    return this.reload();
  }

  stop() {
    this.active = false;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Filters changed (or the tenant did): back to page 1. */
  reload() {
    try {
      this.query = readFilters(this.form);
    } catch (err) {
      showError(this.error, err.message);
      return Promise.resolve();
    }
    this.cursors = [null];
    this.page = 0;
    return this.load(false);
  }

  /** Fetches the current page again, keeping the reader's place. */
  refresh() {
    if (this.inFlight || !this.active) return Promise.resolve();
    return this.load(true);
  }

  next() {
    if (!this.nextCursor) return;
    this.cursors = this.cursors.slice(0, this.page + 1);
    this.cursors.push(this.nextCursor);
    this.page += 1;
    this.load(false);
  }

  previous() {
    if (this.page === 0) return;
    this.page -= 1;
    this.load(false);
  }

  first() {
    this.page = 0;
    this.load(false);
  }

  /** Marks the open session's row. */
  select(id) {
    this.selected = id;
    for (const row of this.body.rows) this.markSelected(row);
  }

  markSelected(row) {
    const on = row.dataset.id === this.selected;
    row.classList.toggle("selected", on);
    const button = row.querySelector("button");
    if (button) {
      if (on) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  async load(quiet) {
    const generation = ++this.generation;
    this.inFlight = true;
    if (!quiet) this.status.textContent = "Loading…";
    const query = { ...this.query, limit: PAGE_SIZE, cursor: this.cursors[this.page] || undefined };
    try {
      const data = await this.ctx.api.get("/v1/admin/sessions", { query });
      if (generation !== this.generation) return;
      this.nextCursor = data.next_cursor || null;
      this.render(data.items || [], quiet);
      showError(this.error, null);
      // A quiet poll changes the line (a live region) only when the count changed.
      const n = (data.items || []).length;
      const count = `${n} ${n === 1 ? "session" : "sessions"} on this page`;
      if (this.status.textContent !== count) this.status.textContent = count;
    } catch (err) {
      if (generation !== this.generation) return;
      showError(this.error, describe(err));
      if (!quiet) this.status.textContent = "";
    } finally {
      if (generation === this.generation) this.inFlight = false;
      this.updatePager();
    }
  }

  updatePager() {
    $("page-no").textContent = String(this.page + 1);
    $("next-page").disabled = !this.nextCursor;
    $("prev-page").disabled = this.page === 0;
    $("first-page").disabled = this.page === 0;
  }

  /** Updates rows in place (keyed by session id) so focus and scroll stay where they were. */
  render(items, quiet) {
    const focused = document.activeElement;
    const focusedId = focused && this.body.contains(focused) ? focused.closest("tr")?.dataset.id : null;
    const existing = new Map();
    for (const row of this.body.rows) existing.set(row.dataset.id, row);
    const wanted = items.map((session) => {
      const old = existing.get(session.id);
      const row = old || h("tr", { dataset: { id: session.id } });
      existing.delete(session.id);
      this.fill(row, session, quiet && old !== undefined);
      this.onSeen(session);
      return row;
    });
    for (const row of existing.values()) row.remove();
    wanted.forEach((row, i) => {
      if (this.body.rows[i] !== row) this.body.insertBefore(row, this.body.rows[i] || null);
    });
    $("list-empty").hidden = items.length > 0;
    if (focusedId && document.activeElement !== focused) {
      const again = this.body.querySelector(`tr[data-id="${CSS.escape(focusedId)}"] button`);
      if (again) again.focus();
    }
  }

  /** Writes one session into its row; `mark`: highlight it if its activity moved since last seen. */
  fill(row, session, mark) {
    const before = this.seen.get(session.id);
    this.seen.set(session.id, session.last_activity_at);
    const signature = JSON.stringify([session.status, session.last_activity_at, session.message_count,
      session.admin_assisted, session.user_id, session.owner]);
    if (row.dataset.signature === signature) return;
    row.dataset.signature = signature;
    row.dataset.status = session.status;
    const open = h("button", {
      type: "button", class: "linkish", title: session.id, text: shortId(session.id),
      "aria-label": `Open session ${shortId(session.id)}`,
    });
    const cells = [
      h("th", { scope: "row" }, open),
      h("td", { text: ownerLabel(session) }),
      h("td", {}, badge(session.status)),
      h("td", {}, timeEl(session.created_at)),
      h("td", {}, timeEl(session.last_activity_at)),
      h("td", { class: "num", text: String(session.message_count ?? 0) }),
      h("td", { text: session.admin_assisted ? "yes" : "no" }),
    ];
    const hadFocus = row.contains(document.activeElement);
    row.replaceChildren(...cells);
    if (hadFocus) open.focus();
    this.markSelected(row);
    if (mark && before !== undefined && before !== session.last_activity_at) {
      row.classList.remove("fresh");
      void row.offsetWidth; // restart the highlight animation
      row.classList.add("fresh");
    }
  }
}
