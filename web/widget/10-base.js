// Widget base: configuration read from its own <script> tag, shared state, storage, HTTP and small helpers.
var D = document, W = window;
var SCRIPT = D.currentScript || [].filter.call(D.querySelectorAll('script[data-tenant]'), function (s) { return /\/widget\.js([?#]|$)/.test(s.src); })[0];
if (!SCRIPT || W.__switchboard) return;
W.__switchboard = 1;
var attr = function (n) { return SCRIPT.getAttribute('data-' + n); };
var TENANT = attr('tenant') || '';
var BASE = new URL(SCRIPT.src, location.href).origin;
var KEY = 'switchboard:' + TENANT;
var enc = encodeURIComponent;
// S: everything the widget knows. msgs: seq -> record; pend: messages sent but not yet stored; lis: listeners.
var S = { msgs: {}, turns: {}, pend: [], lis: {}, n: 0, follow: true, ctx: null };

function stored() {
  try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
}
function save() {
  try {
    if (S.vt || S.jwt || S.sid) localStorage.setItem(KEY, JSON.stringify({ t: S.vt, u: S.jwt, s: S.sid }));
    else localStorage.removeItem(KEY);
  } catch (e) {}
}

// An Error carrying the envelope's code (and Retry-After, details) for callers of the JS API.
function fail(env, res) {
  env = env || {};
  var e = new Error(env.message || env.code || 'error');
  e.code = env.code || 'internal';
  e.status = env.http_status;
  e.details = env.details;
  e.retry = res && +res.headers.get('Retry-After');
  return e;
}

// One HTTP call to the API. tok: a bearer to use instead of the held one; false: a bare request (no headers at all).
function api(method, path, body, tok) {
  var hd = {};
  if (tok !== false) {
    hd['X-Tenant-Id'] = TENANT;
    tok = tok || S.jwt || S.vt;
    if (tok) hd.Authorization = 'Bearer ' + tok;
    if (body) hd['Content-Type'] = 'application/json';
  }
  return fetch(BASE + path, { method: method, headers: hd, body: body ? JSON.stringify(body) : undefined, credentials: 'omit', cache: 'no-store' }).then(function (r) {
    return r.json().catch(function () { return {}; }).then(function (j) {
      if (r.ok) return j;
      throw fail(j.error || { code: r.status >= 500 ? 'unavailable' : 'internal', http_status: r.status }, r);
    });
  }, function () { throw fail({ code: 'offline', message: 'Network error' }); });
}

function emit(ev, data) {
  (S.lis[ev] || []).forEach(function (f) { try { f(data); } catch (e) { setTimeout(function () { throw e; }); } });
}

// An id for client_message_id: [A-Za-z0-9_-], 1..64 characters.
function uid() {
  return 'w' + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
}

// The sub claim of a JWT (read, not verified: only to tell one user from another).
function subOf(t) {
  try { return JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub; } catch (e) {}
}

// Element builder: props become attributes (text -> textContent, class -> className); kids are nodes or strings (as text).
function h(tag, props, kids) {
  var e = D.createElement(tag);
  for (var k in props || {}) {
    if (k == 'text') e.textContent = props[k];
    else if (k == 'class') e.className = props[k];
    else if (props[k] != null) e.setAttribute(k, props[k]);
  }
  (kids || []).forEach(function (c) { if (c != null && c !== '') e.append(c); });
  return e;
}

var NS = 'http://www.w3.org/2000/svg';
function icon(cls, d) {
  var s = D.createElementNS(NS, 'svg'), p = D.createElementNS(NS, 'path');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('class', cls);
  p.setAttribute('d', d);
  s.append(p);
  return s;
}

// A URL a link or image may use: absolute (or relative to base), and only http:, https:, mailto: (and data:image for images).
function safeUrl(u, base, img) {
  try {
    var x = new URL(String(u).trim(), base);
    if (/^(https?|mailto):$/.test(x.protocol) || (img && /^data:image\//i.test(x.href))) return x.href;
  } catch (e) {}
}
