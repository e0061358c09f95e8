// Operator only: the selected tenant's kill switch (GET /v1/admin/tenants/{id}, PUT …/kill-switch).

import { describe } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, formatTime, showError } from "./dom.js";

export class KillSwitch {
  /** `ctx`: {api, tenantId()}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.button = $("kill-switch");
    this.reason = $("ks-reason");
    this.state = $("ks-state");
    this.error = $("ks-error");
    this.enabled = null;
    this.name = null;
    this.button.addEventListener("click", () => this.toggle());
  }

  async load() {
    const id = this.ctx.tenantId();
    this.button.disabled = true;
    this.name = null;
    if (!id) return;
    try {
      const tenant = await this.ctx.api.get(`/v1/admin/tenants/${encodeURIComponent(id)}`, { scoped: false });
      if (id !== this.ctx.tenantId()) return;
      showError(this.error, null);
      this.show(Boolean(tenant.kill_switch), tenant.kill_switch_reason, tenant.updated_at, tenant.name || id);
    } catch (err) {
      showError(this.error, describe(err));
      this.state.textContent = "The kill switch's state is unknown.";
    }
  }

  show(enabled, reason, at, name) {
    this.enabled = enabled;
    this.button.disabled = false;
    this.button.setAttribute("aria-checked", enabled ? "true" : "false");
    this.button.dataset.on = enabled ? "true" : "false";
    if (name) this.name = name;
    const who = this.name || this.ctx.tenantId();
    this.state.textContent = enabled
      ? `On: ${who} is switched off. Every end-user request is refused (tenant.disabled)${reason ? `. Reason: ${reason}` : ""}.`
      : `Off: ${who} serves its visitors normally.`;
    if (at && enabled) this.state.title = `Since ${formatTime(at)}`;
    else this.state.removeAttribute("title");
  }

  async toggle() {
    const id = this.ctx.tenantId();
    if (!id || this.enabled === null) return;
    const enable = !this.enabled;
    if (enable) {
      const ok = await confirmAction(`Turn the kill switch on for ${id}?`,
        "Every end-user request of this tenant will be refused, open chats end, and answers being written stop. Agents keep working.",
        "Turn on");
      if (!ok) return;
    }
    const reason = this.reason.value.trim();
    this.button.disabled = true;
    try {
      const body = reason ? { enabled: enable, reason } : { enabled: enable };
      const res = await this.ctx.api.put(`/v1/admin/tenants/${encodeURIComponent(id)}/kill-switch`, body, { scoped: false });
      showError(this.error, null);
      this.reason.value = "";
      this.show(Boolean(res.enabled), res.reason, res.updated_at, null);
      if (this.onChange) this.onChange();
    } catch (err) {
      showError(this.error, describe(err));
      this.button.disabled = false;
    }
  }
}
