// The live view of one session: admin ticket + EventSource on the admin SSE, resuming by cursor after errors.

import { describe } from "./api.js";

const TYPES = [
  "session", "resume_cursor", "message", "stream_start", "stream_delta", "stream_replace", "stream_end",
  "typing", "takeover", "handoff", "tool",
];
const MAX_BACKOFF_MS = 30000;

/**
 * `handlers`: one function per event type (payload as parsed JSON), plus `state(name, sentence)`
 * with name `connecting` | `online` | `reconnecting` | `offline`, `failure(envelope)` for a
 * server-sent `error` event, and `resync()` when the feed cannot continue from its cursor
 * (the caller reloads the transcript over REST and calls `start` again).
 */
export class LiveFeed {
  constructor(api, sessionId, handlers) {
    this.api = api;
    this.sessionId = sessionId;
    this.handlers = handlers;
    this.es = null;
    this.cursor = null;
    this.stopped = true;
    this.failures = 0;
    this.gotEvent = false;
    this.timer = null;
  }

  /** Opens the feed after `cursor` (the highest final seq already shown; null: none). */
  start(cursor) {
    this.stop();
    this.stopped = false;
    this.cursor = cursor;
    this.failures = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.es) this.es.close();
    this.es = null;
  }

  async connect() {
    this.state(this.failures ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = await this.api.post("/v1/admin/tickets", { session_id: this.sessionId });
    } catch (err) {
      if (this.stopped) return;
      if (err.code === "session.not_found" || err.code === "auth.invalid") {
        this.state("offline", describe(err));
        return;
      }
      this.retry(describe(err));
      return;
    }
    if (this.stopped) return;
    const url = new URL(`/v1/admin/sessions/${encodeURIComponent(this.sessionId)}/events`, window.location.origin);
    url.searchParams.set("ticket", ticket.ticket);
    if (this.cursor !== null && this.cursor !== undefined) url.searchParams.set("last_event_id", String(this.cursor));
    const es = new EventSource(url);
    this.es = es;
    this.gotEvent = false;
    for (const type of TYPES) es.addEventListener(type, (e) => this.dispatch(es, type, e));
    // Also after the browser's own reconnect (same URL, Last-Event-ID): the feed is live again.
    es.addEventListener("open", () => {
      if (es === this.es && !this.stopped) this.state("online");
    });
    es.addEventListener("error", (e) => {
      if (es !== this.es) return;
      if (typeof e.data === "string") {
        this.dispatch(es, "error", e);
        return;
      }
      if (es.readyState === EventSource.CLOSED) {
        // A non-200 answer (expired ticket, 410, limit) or a failure: the browser gives up; we go on.
        this.es = null;
        this.retry("The live view was interrupted; reconnecting.");
      } else {
        this.state("reconnecting", "Reconnecting…");
      }
    });
  }

  dispatch(es, type, e) {
    if (es !== this.es || this.stopped) return;
    if (e.lastEventId && /^\d+$/.test(e.lastEventId)) this.cursor = Number(e.lastEventId);
    let payload = null;
    try {
      payload = JSON.parse(e.data);
    } catch {
      return;
    }
    if (!this.gotEvent) {
      this.gotEvent = true;
      this.failures = 0;
      this.state("online");
    }
    if (type === "error") {
      const env = payload && payload.error ? payload.error : payload;
      if (env && env.code === "chat.cursor_invalid") {
        this.resync();
        return;
      }
      if (this.handlers.failure) this.handlers.failure(env || {});
      return;
    }
    const fn = this.handlers[type];
    if (fn && fn(payload) === false) this.resync();
  }

  /** The feed cannot go on from its cursor: ask the owner to reload and start again. */
  resync() {
    this.stop();
    this.state("reconnecting", "Reloading the transcript…");
    if (this.handlers.resync) this.handlers.resync();
  }

  retry(sentence) {
    if (this.stopped) return;
    this.failures += 1;
    // Twice in a row without a single event: the cursor may be the problem (410); reload instead.
    if (this.failures >= 3 && !this.gotEvent && this.handlers.resync) {
      this.resync();
      return;
    }
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.failures - 1));
    const delay = base / 2 + Math.random() * (base / 2);
    this.state("reconnecting", sentence);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  state(name, sentence) {
    if (this.handlers.state) this.handlers.state(name, sentence);
  }
}
