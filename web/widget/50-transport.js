// Transport: one WebSocket per tab (hello with the last final seq as cursor), the SSE subscription (with a ticket) plus
// POST /v1/chat when WebSockets fail, reconnection with exponential backoff and jitter, and the events of both.
var EVENTS = ['session', 'resume_cursor', 'message', 'stream_start', 'stream_delta', 'stream_replace', 'stream_end', 'typing', 'takeover', 'handoff', 'tool'];

function connect() {
  clearTimeout(S.rt);
  if (!S.sid || S.dead || S.ws || S.es) return;
  var cur = S.cur = S.noCursor ? null : cursor(), ws, up;
  S.err = null;
  if (S.sse) return sse(cur);
  try {
    ws = S.ws = new WebSocket(BASE.replace(/^http/, 'ws') + '/v1/ws?tenant=' + enc(TENANT));
  } catch (e) {
    S.sse = 1;
    return sse(cur);
  }
  ws.onopen = function () {
    up = 1;
    var hi = { type: 'hello', token: S.jwt || S.vt, session_id: S.sid, context: { tenant_id: TENANT } };
    if (cur != null) hi.last_event_id = cur;
    ws.send(JSON.stringify(hi));
  };
  ws.onmessage = function (e) {
    if (S.ws != ws) return;
    S.rx = Date.now();
    handle(JSON.parse(e.data));
  };
  ws.onclose = function () {
    if (S.ws != ws) return;
    S.ws = null;
    // A socket that never opened while HTTP answers: after two of those, use SSE for the rest of this page's life.
    if (!up) fetch(BASE + '/v1/widget/bootstrap?tenant=' + enc(TENANT)).then(function () { if (++S.wsBad > 1) S.sse = 1; }, function () {});
    closed(S.err);
  };
}
S.wsBad = 0;
S.sseBad = 0;

function sse(cur) {
  var mark = S.es = {};
  api('POST', '/v1/tickets', { session_id: S.sid }).then(function (t) {
    if (S.es != mark) return;
    var es = S.es = new EventSource(BASE + '/v1/sessions/' + S.sid + '/events?ticket=' + enc(t.ticket) + (cur != null ? '&last_event_id=' + cur : '')), ok;
    EVENTS.forEach(function (type) {
      es.addEventListener(type, function (e) {
        if (S.es != es) return;
        var f = JSON.parse(e.data);
        f.type = type;
        if (type == 'session') ok = S.sseBad = 0;
        handle(f);
      });
    });
    es.addEventListener('error', function (e) {
      if (S.es != es) return;
      if (e.data) return handle({ type: 'error', error: JSON.parse(e.data).error });
      // EventSource does not retry after a non-200 answer: we do, with a new ticket; twice refused, without a cursor.
      es.close();
      S.es = null;
      if (ok !== 0 && ++S.sseBad > 1) S.noCursor = 1;
      closed(S.err);
    });
  }, function (e) {
    if (S.es != mark) return;
    S.es = null;
    closed(e.code);
  });
}

function drop() {
  clearTimeout(S.rt);
  var ws = S.ws, es = S.es;
  S.ws = S.es = null;
  S.live = false;
  if (ws) ws.close();
  if (es && es.close) es.close();
}

// Reconnect now (after a gap in a stream, or when the network comes back).
function resync() {
  drop();
  S.n = 0;
  connect();
}

function closed(code) {
  S.live = false;
  S.pend.forEach(function (p) { p.sent = 0; });
  if (code == 'chat.cursor_invalid') {
    S.noCursor = 1;
    S.n = 0;
  }
  if (code == 'session.not_found' || (code == 'auth.invalid' && !S.jwt)) return gone(code);
  if (S.dead || /^(tenant|auth|origin)/.test(code)) return;
  if (!navigator.onLine) return setState('offline');
  setState(S.was ? 'reconnecting' : 'connecting');
  S.rt = setTimeout(connect, Math.min(15000, 250 * Math.pow(2, S.n++)) * (0.5 + Math.random() / 2));
}

W.addEventListener('offline', function () {
  if (S.sid && !S.dead) setState('offline');
});
W.addEventListener('online', function () {
  if (S.dead) return;
  if (S.live) setState('online');
  else if (S.sid) resync();
  else setState('online', 'Ready');
});
// Another tab forgot the visitor (reset, logout): forget here too.
W.addEventListener('storage', function (e) {
  if (e.key == KEY && !e.newValue && (S.sid || S.vt || S.jwt)) forget();
});
// A socket that has heard nothing for a minute is dead even if the browser has not noticed: ping, and reconnect when silent.
setInterval(function () {
  if (!S.ws || !S.live) return;
  if (Date.now() - S.rx > 65000) resync();
  else S.ws.send(JSON.stringify({ type: 'ping', ts: Date.now() }));
}, 30000);

function welcome(f) {
  S.n = 0;
  S.live = S.was = true;
  setState('online');
  session(f.session);
  if (S.cur == null) {
    if (S.noCursor) clearLog();
    history();
  }
  S.noCursor = 0;
  flush();
}

// The session object (welcome, session event, new session): takeover banner and closed state.
function session(s) {
  if (!s) return;
  S.status = s.status;
  banner(s.takeover && s.takeover.agent);
  if (s.status == 'closed') closedSession();
}

function handle(f) {
  var t = f.type, r;
  if (t == 'welcome' || t == 'session') return welcome(f);
  if (f.session_id && f.session_id != S.sid) return;
  if (t == 'message') {
    r = upsert(f);
    if (f.role != 'user') typing();
    if (r.status != 'streaming') news(f);
  } else if (t == 'stream_start') {
    S.turns[f.turn_id] = f.seq;
    streaming(f.seq);
    if (status.dataset.state == 'error' && !S.dead && !S.wait) setState('online');
  } else if (t == 'stream_delta' || t == 'stream_replace') delta(f);
  else if (t == 'stream_end') {
    typing();
    upsert(f.message);
    news(f.message);
    flush();
  } else if (t == 'typing') {
    if (f.who != 'user') typing(f.who, f.active);
  } else if (t == 'takeover') {
    S.status = f.active ? 'human' : 'active';
    banner(f.active && f.agent);
    emit('takeover', { active: f.active, agent: f.agent });
  } else if (t == 'handoff') note('We have asked a person to join. Please wait a moment.');
  else if (t == 'tool') tool(f);
  else if (t == 'error') onError(f.error || {});
}

// A final message arrived live: tell the page, and mark the closed launcher when someone else wrote.
function news(m) {
  emit('message', m);
  if (!S.open && m.role != 'user') box.classList.add('unread');
}

// Send the oldest message not yet sent, one at a time (a second one while an answer streams would be turn.in_progress).
function flush() {
  var p = S.pend[0], b;
  if (!p || p.sent || !S.live || busy() || S.wait) return;
  p.sent = 1;
  b = { session_id: S.sid, client_message_id: p.cid };
  if (p.ctx) b.context = p.ctx;
  if (S.ws) return S.ws.send(JSON.stringify(Object.assign({ type: 'message', content: p.text }, b)));
  api('POST', '/v1/chat', Object.assign({ message: p.text, stream: false }, b)).then(function (r) {
    if (r.user_message) upsert(r.user_message);
    if (r.message) upsert(r.message);
  }, function (e) {
    if (S.pend.indexOf(p) < 0) return;
    if (/^(offline|unavailable|llm)/.test(e.code)) p.sent = 0;
    else onError(e);
  });
}
