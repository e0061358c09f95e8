// Flow: bootstrap (is this origin allowed?), the session (created on first use, kept in localStorage), history, sending
// with retries under one client_message_id, errors in plain words, identity (identify / reset).
var ERR = {
  rate_limited: 'You are sending messages too quickly.',
  'quota.exceeded': 'This chat has reached its limit for now. Please try again later.',
  'tenant.disabled': 'This chat is disabled right now.',
  'origin.forbidden': 'This site is not allowed to use this chat.',
  'session.closed': 'This conversation was closed.',
  'session.not_found': 'This conversation is no longer available.',
  'auth.invalid': 'Your sign-in has expired. Please sign in again.',
  'auth.forbidden': 'Please sign in to chat.',
  'connection.limit': 'Too many chat windows are open. Close one and try again.',
  'llm.unavailable': 'The assistant could not answer. Please try again.',
  'llm.timeout': 'The assistant took too long to answer. Please try again.',
  'tenant.unknown': 'This chat is not set up correctly.',
  offline: SAY.offline
};

function boot() {
  setState('connecting');
  return api('GET', '/v1/widget/bootstrap?tenant=' + enc(TENANT), null, false).then(function (b) {
    if (!b.origin_allowed) return stop('origin.forbidden');
    if (b.disabled) return stop('tenant.disabled', ['Try again', reboot]);
    title.textContent = (b.tenant && b.tenant.name) || 'Chat';
    var st = stored(), tok = attr('token');
    S.vt = st.t;
    S.jwt = st.u;
    S.sid = st.s;
    setState(S.sid ? 'connecting' : 'online', S.sid ? 0 : 'Ready');
    return (tok ? ident(tok) : Promise.resolve()).catch(showErr).then(function () {
      S.ok = 1;
      if (S.sid) {
        S.noCursor = 1;
        connect();
      }
      emit('ready');
    });
  }, function (e) {
    if (e.code == 'tenant.unknown') return stop(e.code);
    setState(navigator.onLine ? 'connecting' : 'offline');
    return new Promise(function (ok) { setTimeout(ok, 3000 + Math.random() * 2000); }).then(boot);
  });
}

function reboot() {
  S.dead = null;
  box.classList.remove('dead');
  (S.ready = boot()).then(function () { if (S.open) ensure().catch(function () {}); });
}

// A refusal that stops the widget (until "Try again" where offered).
function stop(code, action) {
  drop();
  S.dead = fail({ code: code, message: ERR[code] });
  box.classList.add('dead');
  setState('error', ERR[code], action);
  emit('error', { code: code, message: ERR[code] });
}

// A session to talk in: the held one, or a new one (created on first open or send, not on page load).
function ensure() {
  return S.ready.then(function () {
    if (S.dead) throw S.dead;
    if (S.sid) return;
    var st = stored();
    if (st.s) {
      S.vt = st.t;
      S.jwt = st.u;
      S.sid = st.s;
      S.noCursor = 1;
      return connect();
    }
    return S.mk || (S.mk = api('POST', '/v1/sessions', {}).catch(function (e) {
      if (e.code != 'auth.invalid' || !S.vt) throw e;
      S.vt = null;
      return api('POST', '/v1/sessions', {});
    }).then(function (r) {
      S.mk = null;
      if (r.token) S.vt = r.token;
      S.sid = r.session.id;
      save();
      S.noCursor = 0;
      session(r.session);
      connect();
    }, function (e) {
      S.mk = null;
      showErr(e);
      throw e;
    }));
  });
}

function history() {
  var sid = S.sid;
  api('GET', '/v1/sessions/' + sid + '/messages?limit=50').then(function (r) {
    if (S.sid == sid) r.items.slice().reverse().forEach(function (m) { upsert(m, 1); });
    scrollEnd();
  }, function (e) {
    if (S.sid == sid && /not_found|auth\.invalid/.test(e.code)) gone(e.code);
  });
}

function send(text) {
  text = String(text == null ? '' : text).trim();
  if (!text) return Promise.reject(fail({ code: 'request.invalid', message: 'The message is empty' }));
  S.last = text;
  return ensure().then(function () {
    return new Promise(function (res, rej) {
      var p = { cid: uid(), text: text, ctx: S.ctx, res: res, rej: rej };
      p.el = h('div', { class: 'msg user pending', 'data-role': 'user', 'data-status': 'sending' }, [h('div', { class: 'body', text: text })]);
      log.append(p.el);
      scrollEnd();
      S.follow = true;
      S.pend.push(p);
      flush();
    });
  });
}

// An error frame or event. A refusal of the message being sent rejects it (turn.in_progress: it waits and is sent again).
function onError(env) {
  var c = env.code, p = S.pend[0], e = env instanceof Error ? env : fail(env);
  S.err = c;
  if (p && p.sent && /^(rate_limited|quota|session\.closed|turn|request|auth\.forbidden|tenant)/.test(c)) {
    p.sent = 0;
    if (c == 'turn.in_progress') return;
    S.pend.shift();
    p.el.remove();
    if (!ta.value) ta.value = p.text;
    p.rej(e);
  }
  if (!/^(chat\.cursor|session\.not_found)/.test(c) && !(c == 'auth.invalid' && !S.jwt)) showErr(e);
}

// Plain words for the visitor, a retry where it helps, and an `error` event for the page. Nothing secret is shown.
function showErr(e) {
  var c = e.code, msg = ERR[c] || 'Something went wrong. Please try again.', wait;
  if (c == 'tenant.disabled' || c == 'origin.forbidden') return stop(c, c == 'tenant.disabled' && ['Try again', reboot]);
  emit('error', { code: c, message: msg });
  if (c == 'session.closed') return closedSession();
  if (c == 'offline') return setState('offline');
  if (c == 'rate_limited') {
    wait = Math.max(1, e.retry || (e.details && e.details.retry_after) || 5);
    S.wait = 1;
    setState('error', msg + ' You can send again in ' + wait + ' seconds.');
    clearTimeout(S.wt);
    S.wt = setTimeout(function () {
      S.wait = 0;
      setState(S.live ? 'online' : 'connecting', 'You can send messages again.', ta.value.trim() ? ['Try again', submit] : null);
      flush();
    }, wait * 1000);
    return;
  }
  if (c == 'llm.unavailable' || c == 'llm.timeout') return setState('error', msg, ['Try again', function () { setState('online'); send(S.last).catch(function () {}); }]);
  setState('error', msg, c == 'auth.invalid' || c == 'auth.forbidden' ? null : ['Try again', resync]);
}

function closedSession() {
  setState('error', ERR['session.closed'], ['Start a new conversation', fresh]);
}

// The held session is gone (deleted, or the visitor token no longer valid): forget it and offer a new conversation.
function gone(code) {
  drop();
  if (code == 'auth.invalid') S.vt = null;
  S.sid = null;
  save();
  clearLog();
  banner();
  setState('error', ERR['session.not_found'], ['Start a new conversation', fresh]);
}

function fresh() {
  drop();
  S.sid = null;
  save();
  clearLog();
  banner();
  typing();
  setState('connecting');
  ensure().then(function () { ta.focus(); }, function () {});
}

// Become the user of this tenant JWT: link the visitor's sessions (when a visitor token is held), then use the JWT.
function ident(jwt) {
  var same = S.jwt && subOf(S.jwt) == subOf(jwt), link;
  if (same) {
    S.jwt = jwt;
    save();
    if (S.ok && S.sid && !S.ws && !S.es) connect();
    return Promise.resolve();
  }
  drop();
  link = S.vt && !S.jwt ? api('POST', '/v1/identity/link', { visitor_token: S.vt }, jwt).catch(function (e) {
    if (e.code != 'request.invalid') throw e;
    // Already linked (or no longer valid): its conversation is not ours to continue; look for the user's own.
    S.sid = null;
    clearLog();
  }) : Promise.resolve(forget());
  return link.then(function () {
    S.vt = null;
    S.jwt = jwt;
    save();
    if (S.sid) return;
    return api('GET', '/v1/sessions?limit=1').then(function (r) {
      var s = r.items && r.items[0];
      if (s && !S.sid) S.sid = s.id;
      save();
    });
  }, function (e) {
    if (S.sid) connect();
    throw e;
  }).then(function () {
    if (S.ok && S.sid) {
      S.noCursor = 1;
      connect();
    }
  });
}

// Forget this browser's visitor or user: token and session removed, socket closed, transcript cleared.
function forget() {
  drop();
  S.pend.forEach(function (p) { p.rej(fail({ code: 'reset', message: 'The chat was reset' })); });
  S.pend = [];
  S.vt = S.jwt = S.sid = null;
  S.was = false;
  try { localStorage.removeItem(KEY); } catch (e) {}
  clearLog();
  banner();
  typing();
  if (!S.dead) setState('online', 'Ready');
}
