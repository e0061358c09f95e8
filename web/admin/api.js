// The console's HTTP client for /v1/admin: bearer token, X-Tenant-Id, and errors as plain sentences.

/** Sentences for the error codes of SPEC §8, as an agent should read them. */
const SENTENCES = {
  "request.invalid": "The request was not accepted",
  "request.unsupported_media_type": "The request was not sent as JSON",
  "request.too_large": "The request is too large",
  "request.timeout": "The request took too long to arrive; try again",
  "request.headers_too_large": "The request headers are too large",
  "request.uri_too_long": "The address is too long",
  "tenant.missing": "No tenant is selected",
  "tenant.unknown": "That tenant does not exist (any more)",
  "tenant.disabled": "This tenant is switched off (kill switch)",
  "origin.missing": "The request came without an Origin",
  "origin.forbidden":
    "The server refuses requests from this address: open the console at the server's public_url, or list this origin in admin_origins",
  "auth.missing": "You are not signed in",
  "auth.invalid": "The token was not accepted (it may be wrong or expired)",
  "auth.forbidden": "This token is not allowed to do that",
  "auth.context_mismatch": "The token belongs to another tenant",
  "session.not_found": "That session no longer exists",
  "session.closed": "The session is closed",
  "session.not_human": "Take the session over first: nobody holds it",
  "turn.in_progress": "An answer is still being written; try again in a moment",
  "chat.cursor_invalid": "The live view lost its place; it reloads the transcript",
  "rate_limited": "Too many requests; wait a moment and try again",
  "quota.exceeded": "The tenant's budget is spent for today",
  "connection.limit": "Too many live views are open; close some tabs",
  "llm.unavailable": "The AI provider failed",
  "llm.timeout": "The AI provider was too slow",
  "internal": "The server hit an internal error",
  "not_found": "The server does not offer this",
};

/** An error from the API (the envelope of SPEC §8) or from the network. */
export class ApiError extends Error {
  constructor({ code, message, status, traceId, details }) {
    super(message || code || "error");
    this.code = code || "network";
    this.status = status || 0;
    this.traceId = traceId || null;
    this.details = Array.isArray(details) ? details : null;
  }

  /** One sentence for people, with the trace id when there is one. */
  get sentence() {
    let text = SENTENCES[this.code] || (this.code === "network"
      ? "The server could not be reached"
      : `The server refused the request (${this.code})`);
    if (this.details && this.details.length) {
      const parts = this.details.map((d) => `${d.field} ${d.problem}`).join("; ");
      text += `: ${parts}`;
    }
    text += ".";
    if (this.traceId) text += ` Trace id ${this.traceId}.`;
    return text;
  }
}

/** A sentence for any thrown value. */
export function describe(err) {
  if (err instanceof ApiError) return err.sentence;
  return `Something went wrong in the console: ${err && err.message ? err.message : err}.`;
}

export class Api {
  /** `token`: the bearer token; `tenant()`: the tenant to name in X-Tenant-Id (operator), or null. */
  constructor(token, tenant = () => null) {
    this.token = token;
    this.tenant = tenant;
    /** Called with every ApiError whose code is auth.invalid or auth.missing (signed out). */
    this.onUnauthorized = null;
  }

  /**
   * `request("GET", "/v1/admin/sessions", {query, body, scoped})`. `scoped`: the route is tenant-scoped,
   * so the operator's tenant goes in X-Tenant-Id (default true). Resolves to the parsed JSON (or null).
   */
  async request(method, path, { query, body, scoped = true } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const headers = { Accept: "application/json", Authorization: `Bearer ${this.token}` };
    const tenant = scoped ? this.tenant() : null;
    if (tenant) headers["X-Tenant-Id"] = tenant;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      throw new ApiError({ code: "network", message: String(err) });
    }
    const traceId = res.headers.get("X-Trace-Id");
    let data = null;
    const text = await res.text().catch(() => "");
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const env = data && data.error ? data.error : {};
      const error = new ApiError({
        code: env.code || `http_${res.status}`,
        message: env.message,
        status: res.status,
        traceId: env.trace_id || traceId,
        details: env.details,
      });
      if ((error.code === "auth.invalid" || error.code === "auth.missing") && this.onUnauthorized) {
        this.onUnauthorized(error);
      }
      throw error;
    }
    return data;
  }

  get(path, options) {
    return this.request("GET", path, options);
  }

  post(path, body = {}, options = {}) {
    return this.request("POST", path, { ...options, body });
  }

  put(path, body, options = {}) {
    return this.request("PUT", path, { ...options, body });
  }
}
