// One session: facts, live transcript, Take over / Release / Close session, and the Reply box.

import { describe } from "./api.js";
import { CannedReplies } from "./canned.js";
import { confirmAction } from "./confirm.js";
import { $, badge, h, ownerLabel, shortId, showError, timeEl } from "./dom.js";
import { LiveFeed } from "./live.js";
import { pageContextParts } from "./pagecontext.js";
import { Transcript } from "./transcript.js";

/** How long a typing indicator lasts without news (ms). */
const TYPING_MS = 8000;
const TYPING_TEXT = {
  user: "The visitor is typing…",
  assistant: "The AI is writing…",
  agent: "An agent is typing…",
};
const LIVE_TEXT = {
  connecting: "Connecting…",
  online: "Live",
  reconnecting: "Reconnecting…",
  offline: "Not connected",
};

/** After a turn or a visitor's message, how long to wait before fetching the detail again (ms). */
const REFRESH_MS = 300;

export class SessionDetail {
  /** `ctx`: {api, name}; `onChange(session)`: the session changed (the list refreshes). */
  constructor(ctx, onChange) {
    this.ctx = ctx;
    this.onChange = onChange;
    this.panel = $("detail");
    this.error = $("detail-error");
    this.transcript = new Transcript($("transcript"));
    this.reply = $("reply");
    this.session = null;
    this.feed = null;
    this.typingTimer = null;
    this.resyncTimer = null;
    this.refreshTimer = null;
    this.resyncs = 0;
    this.canned = new CannedReplies(this.reply, () => this.ctx.name);
    $("takeover").addEventListener("click", () => this.act("takeover"));
    $("release").addEventListener("click", () => this.act("release"));
    $("close-session").addEventListener("click", () => this.closeSession());
    $("detail-close").addEventListener("click", () => this.hide(true));
    $("reply-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    this.reply.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.defaultPrevented) {
        e.preventDefault();
        this.send();
      }
    });
  }

  get id() {
    return this.session ? this.session.id : this.pendingId || null;
  }

  /** Opens a session: its detail over REST, then the live feed from the last final seq shown. */
  async open(id) {
    this.stopFeed();
    this.pendingId = id;
    this.session = null;
    this.resyncs = 0;
    this.panel.hidden = false;
    $("detail-title").textContent = `Session ${shortId(id)}`;
    $("detail-facts").replaceChildren();
    $("visitor-page").hidden = true;
    this.transcript.reset([]);
    showError(this.error, null);
    this.reply.value = "";
    this.setButtons();
    $("detail-title").focus();
    await this.load(id);
  }

  async load(id) {
    clearTimeout(this.resyncTimer);
    clearTimeout(this.refreshTimer);
    try {
      const data = await this.ctx.api.get(`/v1/admin/sessions/${encodeURIComponent(id)}`);
      if (this.pendingId !== id) return;
      this.transcript.reset(data.messages || []);
      $("detail-older").hidden = !(data.messages && data.messages.length && data.messages[0].seq > 1);
      this.setSession(data.session);
      showError(this.error, null);
      this.feed = new LiveFeed(this.ctx.api, id, this.handlers());
      // After repeated reloads that never got live (a cursor the server refuses, 410), start without one.
      const shown = this.transcript.finalCursor();
      const cursor = shown !== null ? shown : Number(data.session.latest_seq) || 0;
      this.feed.start(this.resyncs >= 2 ? null : cursor);
    } catch (err) {
      if (this.pendingId !== id) return;
      showError(this.error, describe(err));
      this.live("offline");
      // Try again later unless the session is gone.
      if (err.code !== "session.not_found" && err.code !== "auth.invalid") {
        this.resyncTimer = setTimeout(() => this.load(id), 5000);
      }
    }
  }

  hide(toList) {
    this.stopFeed();
    clearTimeout(this.resyncTimer);
    clearTimeout(this.refreshTimer);
    this.pendingId = null;
    this.session = null;
    this.panel.hidden = true;
    if (toList) {
      const button = document.querySelector("#sessions-body button[aria-current]");
      if (button) button.focus();
    }
    this.onChange(null);
  }

  stopFeed() {
    if (this.feed) this.feed.stop();
    this.feed = null;
    this.live("offline");
  }

  handlers() {
    const t = this.transcript;
    return {
      session: ({ session }) => this.setSession(session),
      resume_cursor: () => {},
      message: (m) => {
        t.upsert(m);
        if (m.role === "user" || m.role === "agent") this.typing(null);
        // A visitor's message may carry a new page context.
        if (m.role === "user") this.scheduleRefresh();
      },
      stream_start: (e) => t.start(e),
      stream_delta: (e) => t.delta(e),
      stream_replace: (e) => t.replace(e),
      stream_end: (e) => {
        t.end(e);
        this.typing(null);
        // The live events carry only the visible part of tool calls: the full payloads come with the detail.
        if (t.hasPartialCalls(e.seq)) this.scheduleRefresh();
      },
      typing: ({ who, active }) => this.typing(active ? who : null),
      takeover: ({ active, agent }) => {
        if (!this.session) return;
        const since = new Date().toISOString();
        this.setSession({
          ...this.session,
          status: active ? "human" : this.session.status === "closed" ? "closed" : "active",
          admin_assisted: this.session.admin_assisted || active,
          takeover: active ? { agent, since: this.session.takeover?.since || since } : null,
        });
      },
      handoff: () => this.session && this.setSession({ ...this.session, status: "waiting" }),
      tool: (e) => t.tool(e),
      failure: (env) => {
        const sentence = env.code === "tenant.disabled"
          ? "The tenant's kill switch is on: the live view was ended; it reconnects by itself."
          : `The live view reported an error (${env.code || "unknown"})${env.trace_id ? `; trace id ${env.trace_id}` : ""}.`;
        showError(this.error, sentence);
      },
      state: (name, sentence) => {
        if (name === "online") this.resyncs = 0;
        this.live(name, sentence);
      },
      resync: () => {
        const id = this.id;
        this.resyncs += 1;
        if (id) this.load(id);
      },
    };
  }

  /** Fetches the detail again soon (debounced), for tool payloads and the page context, without a restart. */
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    const id = this.id;
    if (!id || !this.session) return;
    try {
      const data = await this.ctx.api.get(`/v1/admin/sessions/${encodeURIComponent(id)}`);
      if (this.pendingId !== id) return;
      for (const m of data.messages || []) {
        if (Array.isArray(m.tool_calls) && m.tool_calls.length) this.transcript.setToolCalls(m.seq, m.tool_calls);
      }
      // Only the context: the live events are fresher for everything else (status, takeover).
      if (data.session && "context" in data.session && this.session) {
        this.setSession({ ...this.session, context: data.session.context }, true);
      }
    } catch {
      // Not fatal: the live view goes on, and the next turn or a reopen fetches again.
    }
  }

  live(name, sentence) {
    const el = $("live-state");
    el.dataset.state = name;
    el.textContent = LIVE_TEXT[name] || name;
    el.title = sentence || "";
    if (name === "online" && this.error.textContent.startsWith("The tenant's kill switch")) showError(this.error, null);
  }

  typing(who) {
    const el = $("typing");
    clearTimeout(this.typingTimer);
    if (!who) {
      el.hidden = true;
      el.textContent = "";
      return;
    }
    el.dataset.typing = who;
    el.textContent = TYPING_TEXT[who] || "Someone is typing…";
    el.hidden = false;
    this.typingTimer = setTimeout(() => this.typing(null), TYPING_MS);
  }

  /** A fresher copy of the open session from the list's poll (counts, activity). */
  merge(session) {
    const s = this.session;
    if (!s || session.id !== s.id || String(session.last_activity_at) < String(s.last_activity_at)) return;
    if (session.status === s.status && session.message_count === s.message_count
      && session.last_activity_at === s.last_activity_at) return;
    this.setSession(session, true);
  }

  setSession(session, quiet = false) {
    if (!session || (this.pendingId && session.id !== this.pendingId)) return;
    this.session = { ...(this.session || {}), ...session };
    const s = this.session;
    const holder = s.takeover && s.takeover.agent ? s.takeover.agent.name : null;
    const rows = [
      ["Session id", h("code", { text: s.id })],
      ["User / visitor", ownerLabel(s)],
      ["Status", badge(s.status)],
      ["Held by", holder ? [holder, " since ", timeEl(s.takeover.since)] : "nobody (the AI answers)"],
      ["Created", timeEl(s.created_at)],
      ["Last activity", timeEl(s.last_activity_at)],
      ["Messages", String(s.message_count ?? 0)],
      ["Assisted", s.admin_assisted ? "yes" : "no"],
    ];
    $("detail-facts").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
    this.showPageContext(s.context);
    this.setButtons();
    if (!quiet) this.onChange(s);
  }

  /** The "Visitor's page" section: hidden without a context; an open "Everything the page sent" stays open. */
  showPageContext(context) {
    const section = $("visitor-page");
    const body = $("visitor-page-body");
    if (context === null || context === undefined) {
      section.hidden = true;
      body.replaceChildren();
      this.shownContext = null;
      return;
    }
    const text = JSON.stringify(context);
    if (!section.hidden && text === this.shownContext) return;
    const wasOpen = !!body.querySelector("details[open]");
    body.replaceChildren(...pageContextParts(context));
    if (wasOpen) body.querySelector("details").open = true;
    this.shownContext = text;
    section.hidden = false;
  }

  setButtons() {
    const s = this.session;
    const status = s ? s.status : null;
    const holder = s && s.takeover && s.takeover.agent ? s.takeover.agent.name : null;
    const mine = holder !== null && holder === this.ctx.name;
    $("takeover").disabled = !s || status === "closed" || (status === "human" && mine);
    // A waiting session (the model asked for a person) may also go back to the AI.
    $("release").disabled = !s || (status !== "human" && status !== "waiting");
    $("close-session").disabled = !s || status === "closed";
    $("send").disabled = !s || status !== "human";
    $("reply-hint").textContent = status === "human"
      ? "Type / at the start for canned replies. Enter sends, Shift+Enter starts a new line."
      : status === "closed"
        ? "This session is closed."
        : status === "waiting"
          ? "The visitor asked for a person: take the session over to reply."
        : "Take the session over to reply. Type / at the start for canned replies.";
  }

  async act(action) {
    const id = this.id;
    if (!id) return;
    const button = $(action === "takeover" ? "takeover" : "release");
    button.disabled = true;
    try {
      const session = await this.ctx.api.post(`/v1/admin/sessions/${encodeURIComponent(id)}/${action}`, {});
      this.setSession(session);
      showError(this.error, null);
      if (action === "takeover") this.reply.focus();
    } catch (err) {
      showError(this.error, describe(err));
      this.setButtons();
    }
  }

  async closeSession() {
    const id = this.id;
    if (!id) return;
    const ok = await confirmAction("Close this session?",
      "The visitor will not be able to write in it any more; an answer still being written is stopped.",
      "Close session");
    if (!ok) return;
    try {
      const session = await this.ctx.api.post(`/v1/admin/sessions/${encodeURIComponent(id)}/close`, {});
      this.setSession(session);
      showError(this.error, null);
    } catch (err) {
      showError(this.error, describe(err));
    }
  }

  async send() {
    const id = this.id;
    const content = this.reply.value.trim();
    if (!id || !content) return;
    if (!this.session || this.session.status !== "human") {
      showError(this.error, "Take the session over first: only then can you reply.");
      return;
    }
    $("send").disabled = true;
    try {
      const data = await this.ctx.api.post(`/v1/admin/sessions/${encodeURIComponent(id)}/messages`, { content });
      if (data && data.message) this.transcript.upsert(data.message);
      this.reply.value = "";
      showError(this.error, null);
    } catch (err) {
      showError(this.error, describe(err));
    } finally {
      this.setButtons();
    }
  }
}
