// Signing in and out: the token lives in sessionStorage only; tells an agent from the operator.

import { Api, ApiError } from "./api.js";

const TOKEN_KEY = "switchboard.console.token";
const TENANT_KEY = "switchboard.console.tenant";

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function storedTenant() {
  try {
    return sessionStorage.getItem(TENANT_KEY);
  } catch {
    return null;
  }
}

export function storeTenant(id) {
  sessionStorage.setItem(TENANT_KEY, id);
}

export function forget() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TENANT_KEY);
  } catch {
    // Storage refused (privacy mode): nothing was kept either.
  }
}

/** The claims of a JWT, read without verifying (the server verifies); null if it is not one. */
export function claims(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const value = JSON.parse(new TextDecoder().decode(bytes));
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/**
 * Finds out who a token belongs to. The operator is the one caller that may list tenants
 * (GET /v1/admin/tenants → 200); an agent gets auth.forbidden there but may list its own
 * tenant's sessions. Resolves to {role: "operator", tenants} or {role: "agent", tenant, name, sub};
 * rejects with an ApiError (or an Error with a sentence) otherwise.
 */
export async function identify(token) {
  const api = new Api(token);
  try {
    const list = await api.get("/v1/admin/tenants", { scoped: false });
    return { role: "operator", tenants: (list && list.items) || [], name: "Operator" };
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== "auth.forbidden") throw err;
  }
  try {
    await api.get("/v1/admin/sessions", { query: { limit: 1 }, scoped: false });
  } catch (err) {
    if (err instanceof ApiError && err.code === "auth.forbidden") {
      throw new Error(
        "This token belongs to a user without the admin role; agents sign in with a token whose role is admin.",
      );
    }
    throw err;
  }
  const c = claims(token) || {};
  const aud = Array.isArray(c.aud) ? c.aud[0] : c.aud;
  const name = typeof c.name === "string" && c.name.trim() ? c.name.trim() : "Agent";
  return { role: "agent", tenant: c.tid || aud || "", name, sub: c.sub || "", exp: c.exp || null };
}
