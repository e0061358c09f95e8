// The console's entry point: sign in/out, the operator's tenant choice, and switching between views.

import { Api, describe } from "./api.js";
import { AuditLog } from "./audit.js";
import { forget, identify, storedTenant, storedToken, storeTenant, storeToken } from "./auth.js";
import { $, clear, h, showError } from "./dom.js";
import { SessionDetail } from "./detail.js";
import { KillSwitch } from "./killswitch.js";
import { SessionList } from "./sessions.js";
import { UsageView } from "./usage.js";

const state = { api: null, role: null, name: null, tenant: null, view: "sessions" };

/** What every view needs: the client, the agent's name, and the tenant worked in. */
const ctx = {
  get api() {
    return state.api;
  },
  get name() {
    return state.name;
  },
  get role() {
    return state.role;
  },
  tenantId: () => state.tenant,
};

const list = new SessionList(ctx, (id) => openSession(id), (session) => detail.merge(session));
const detail = new SessionDetail(ctx, (session) => {
  list.select(session ? session.id : null);
  if (session) list.refresh();
});
const usage = new UsageView(ctx);
const killSwitch = new KillSwitch(ctx);
const audit = new AuditLog(ctx);
killSwitch.onChange = () => audit.reload();

function openSession(id) {
  list.select(id);
  detail.open(id);
}

function showSignIn(message) {
  $("console").hidden = true;
  $("whoami").hidden = true;
  $("signin").hidden = false;
  showError($("signin-error"), message || null);
  $("token").focus();
}

async function signIn(token, quiet) {
  const button = $("sign-in");
  button.disabled = true;
  showError($("signin-error"), null);
  let who;
  try {
    who = await identify(token);
  } catch (err) {
    button.disabled = false;
    forget();
    showSignIn(err instanceof Error && !("code" in err) ? err.message : describe(err));
    return;
  }
  button.disabled = false;
  try {
    storeToken(token);
  } catch {
    // sessionStorage refused: the console works until the tab is reloaded.
  }
  state.api = new Api(token, () => (state.role === "operator" ? state.tenant : null));
  state.api.onUnauthorized = () => signOut("Your token is no longer accepted (it may have expired). Sign in again.");
  state.role = who.role;
  state.name = who.name;
  $("token").value = "";
  $("signin").hidden = true;
  $("console").hidden = false;
  $("whoami").hidden = false;
  document.body.dataset.role = who.role;
  for (const el of document.querySelectorAll("[data-operator]")) el.hidden = who.role !== "operator";
  if (who.role === "operator") {
    setupTenants(who.tenants);
    $("who").textContent = "Operator";
  } else {
    state.tenant = who.tenant;
    $("tenant-pick").hidden = true;
    $("who").textContent = `${who.name} · agent of ${who.tenant || "this tenant"}`;
  }
  show("sessions", !quiet);
}

function setupTenants(tenants) {
  const select = $("tenant");
  clear(select);
  for (const t of tenants) {
    select.append(h("option", { value: t.id, text: t.name && t.name !== t.id ? `${t.name} (${t.id})` : t.id }));
  }
  const stored = storedTenant();
  state.tenant = tenants.some((t) => t.id === stored) ? stored : tenants[0] ? tenants[0].id : null;
  select.value = state.tenant || "";
  $("tenant-pick").hidden = false;
  showError($("console-error"), tenants.length ? null : "There are no tenants yet: create one with switchboard tenant create.");
}

function signOut(message) {
  forget();
  list.stop();
  detail.hide(false);
  state.api = null;
  state.role = null;
  state.tenant = null;
  delete document.body.dataset.role;
  for (const id of ["sessions-body", "usage-body", "audit-body", "usage-chart"]) clear($(id));
  showSignIn(message);
}

/** Shows one view; `focus`: move focus to its heading (after a click in the nav). */
function show(view, focus) {
  if (view === "tenant" && state.role !== "operator") view = "sessions";
  state.view = view;
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const name of ["sessions", "usage", "tenant"]) $(`view-${name}`).hidden = name !== view;
  if (view === "sessions") list.start();
  else list.stop();
  if (view === "usage") usage.load();
  if (view === "tenant") {
    killSwitch.load();
    audit.reload();
  }
  if (focus) {
    const heading = $(`view-${view}`).querySelector("h2");
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    showError($("signin-error"), "Paste a token first.");
    return;
  }
  signIn(token, false);
});
$("token").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("signin-form").requestSubmit();
  }
});
$("sign-out").addEventListener("click", () => signOut("You are signed out."));
$("tenant").addEventListener("change", () => {
  state.tenant = $("tenant").value || null;
  if (state.tenant) storeTenant(state.tenant);
  detail.hide(false);
  show(state.view, false);
});
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => show(tab.dataset.view, true));
}

const saved = storedToken();
if (saved) signIn(saved, true);
else showSignIn();
