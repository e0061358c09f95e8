// Operator only: the audit log, paged newest first, and the verification of its HMAC chain.

import { describe } from "./api.js";
import { $, h, showError, timeEl } from "./dom.js";

const PAGE = 25;

/** An entry's detail as "key: value" pairs for people. */
function detailText(detail) {
  if (detail === null || detail === undefined) return "";
  if (typeof detail !== "object") return String(detail);
  return Object.entries(detail)
    .map(([k, v]) => `${k}: ${v === null ? "none" : typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}

export class AuditLog {
  /** `ctx`: {api, tenantId()}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.body = $("audit-body");
    this.error = $("audit-error");
    this.verdict = $("audit-verdict");
    this.all = $("audit-all");
    this.cursors = [null];
    this.page = 0;
    this.next = null;
    this.generation = 0;
    $("audit-older").addEventListener("click", () => this.older());
    $("audit-newest").addEventListener("click", () => this.reload());
    $("audit-verify").addEventListener("click", () => this.verify());
    this.all.addEventListener("change", () => this.reload());
  }

  reload() {
    this.cursors = [null];
    this.page = 0;
    return this.load();
  }

  older() {
    if (!this.next) return;
    this.cursors = this.cursors.slice(0, this.page + 1);
    this.cursors.push(this.next);
    this.page += 1;
    this.load();
  }

  async load() {
    const generation = ++this.generation;
    const scoped = !this.all.checked;
    $("audit-caption").textContent = scoped
      ? `Audit entries of ${this.ctx.tenantId() || "this tenant"}, newest first`
      : "Audit entries of every tenant, newest first";
    try {
      const data = await this.ctx.api.get("/v1/admin/audit", {
        query: { limit: PAGE, cursor: this.cursors[this.page] || undefined }, scoped,
      });
      if (generation !== this.generation) return;
      showError(this.error, null);
      this.next = data.next_cursor || null;
      this.render(data.items || []);
    } catch (err) {
      if (generation !== this.generation) return;
      showError(this.error, describe(err));
    } finally {
      $("audit-older").disabled = !this.next;
      $("audit-newest").disabled = this.page === 0;
    }
  }

  render(items) {
    if (!items.length) {
      this.body.replaceChildren(h("tr", {}, h("td", { colspan: "7", class: "muted", text: "No entries." })));
      return;
    }
    this.body.replaceChildren(...items.map((e) => h("tr", { dataset: { seq: String(e.seq) } },
      h("th", { scope: "row", class: "num", text: String(e.seq) }),
      h("td", {}, timeEl(e.at)),
      h("td", { text: e.actor_name ? `${e.actor_name} (${e.actor})` : String(e.actor || "") }),
      h("td", { text: e.tenant_id || "–" }),
      h("td", {}, h("code", { text: e.action || "" })),
      h("td", { class: "target", text: e.target || "" }),
      h("td", { class: "detail-cell", text: detailText(e.detail) }),
    )));
  }

  async verify() {
    const button = $("audit-verify");
    button.disabled = true;
    this.verdict.textContent = "Verifying…";
    delete this.verdict.dataset.intact;
    try {
      const r = await this.ctx.api.get("/v1/admin/audit/verify", { scoped: false });
      this.verdict.dataset.intact = r.intact ? "true" : "false";
      this.verdict.textContent = r.intact
        ? `The chain is intact (${r.entries} entries).`
        : `The chain is broken at entry #${r.first_broken ? r.first_broken.seq : "?"}: ${r.first_broken ? r.first_broken.reason : "unknown reason"}.`;
      showError(this.error, null);
    } catch (err) {
      this.verdict.textContent = "";
      showError(this.error, describe(err));
    } finally {
      button.disabled = false;
    }
  }
}
