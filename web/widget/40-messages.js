// Transcript: one element per stored message keyed by seq (an event for a known seq replaces it), streaming deltas applied
// by revision and offset in Unicode scalar values, and tool results (product cards) keyed by call_id, updated in place.
// A tool result sits in the answer where its text stood when the call's first event came (the text of the next round
// goes on after it); results known only from a stored message, which does not say where, come before the text.
var NOTE = { aborted: 'Stopped.', interrupted: 'This answer was interrupted.', error: 'The answer could not be completed.' };

// m: a message object (or a streaming replay with its revision). hist: from REST history, which never replaces what the
// live stream already gave, except a final message over a streaming one.
function upsert(m, hist) {
  var r = S.msgs[m.seq], p;
  if (r && hist && !(r.status == 'streaming' && m.status != 'streaming')) return r;
  if (!r) {
    r = S.msgs[m.seq] = { seq: m.seq, tools: {}, at: {}, te: {} };
    p = m.role == 'user' && m.client_message_id && S.pend.filter(function (x) { return x.cid == m.client_message_id; })[0];
    if (p) {
      r.el = p.el;
      r.el.classList.remove('pending');
      S.pend.splice(S.pend.indexOf(p), 1);
      setTimeout(flush, 800);
    } else r.el = h('div');
    place(r);
  }
  r.role = m.role;
  r.status = m.status;
  r.author = m.author;
  r.text = m.content || '';
  r.n = Array.from(r.text).length;
  r.rev = m.revision || 0;
  (m.tools || []).forEach(function (t) { r.tools[t.call_id] = t; });
  paint(r);
  if (p) p.res(m);
  return r;
}

// Keep the log in seq order: before the first later message or the first message still being sent.
function place(r) {
  var c = log.firstChild;
  while (c && !(c.classList.contains('pending') || +c.dataset.seq > r.seq)) c = c.nextSibling;
  if (c != r.el) log.insertBefore(r.el, c);
}

function paint(r) {
  var e = r.el, follow = S.follow, who = r.role == 'agent' ? r.author || 'Agent' : null, b;
  e.className = 'msg ' + r.role;
  e.dataset.role = r.role;
  e.dataset.seq = r.seq;
  e.dataset.status = r.status;
  if (who) e.dataset.author = who;
  e.replaceChildren();
  if (who) e.append(h('div', { class: 'who', text: who }));
  e.append(b = h('div', { class: 'body' }, [r.role == 'user' || r.role == 'system' ? r.text : null]));
  if (r.role != 'user' && r.role != 'system') cut(r, b);
  if (NOTE[r.status]) e.append(h('div', { class: 'st', text: NOTE[r.status] }));
  log.setAttribute('aria-busy', !!busy());
  if (follow) scrollEnd();
}

// The answer's text cut at its tool results' places. A result's element is kept while it is unchanged (no image reloads).
function cut(r, b) {
  var cs = Array.from(r.text), from = 0, g, ids = Object.keys(r.tools).sort(function (x, y) { return (r.at[x] || 0) - (r.at[y] || 0); });
  ids.forEach(function (id) {
    var at = Math.min(r.at[id] || 0, cs.length), t = r.tools[id], k = JSON.stringify(t) + (t.status == 'shown' && r.status != 'streaming'), c = r.te[id];
    if (!c || c.k != k) c = r.te[id] = { k: k, el: toolEl(t, r.status != 'streaming', c && c.el) };
    if (!g || at > from) {
      if (at > from) b.append(md(cs.slice(from, at).join('')));
      b.append(g = h('div', { class: 'tools' }));
      from = at;
    }
    g.append(c.el);
  });
  b.append(md(cs.slice(from).join('')));
}

function busy() {
  for (var k in S.msgs) if (S.msgs[k].status == 'streaming') return true;
}

// The cursor: the highest seq held whose message is final.
function cursor() {
  var c = 0;
  for (var k in S.msgs) if (S.msgs[k].status != 'streaming' && +k > c) c = +k;
  return c;
}

function streaming(seq) {
  return S.msgs[seq] || upsert({ seq: seq, role: 'assistant', status: 'streaming', content: '' });
}

// stream_delta / stream_replace. A delta of an older revision or one already applied is dropped; a gap means a resync.
function delta(f) {
  var r = streaming(f.seq), cs, skip;
  typing();
  if (r.status != 'streaming' || f.revision < r.rev) return;
  if (f.type == 'stream_replace') {
    if (f.revision == r.rev) return;
    r.text = f.text;
    r.n = Array.from(f.text).length;
  } else {
    if (f.revision > r.rev) return resync();
    cs = Array.from(f.text);
    skip = r.n - f.offset;
    if (skip < 0) return resync();
    if (skip >= cs.length) return;
    r.text += cs.slice(skip).join('');
    r.n += cs.length - skip;
  }
  r.rev = f.revision;
  paint(r);
}

// A tool event: attach to its turn's answer (or the latest assistant message) and repaint in place.
function tool(f) {
  var seq = S.turns[f.turn_id], r, k;
  if (!seq) for (k in S.msgs) if (S.msgs[k].role == 'assistant' && (!seq || +k > seq)) seq = +k;
  if (!(r = seq && S.msgs[seq])) return;
  var old = r.tools[f.call_id] || {};
  if (r.at[f.call_id] == null && r.status == 'streaming') r.at[f.call_id] = r.n;
  r.tools[f.call_id] = { call_id: f.call_id, name: f.name, status: f.status, display: f.display || old.display };
  paint(r);
}

// The live check of a tool's products (SPEC §16): shown = still checking (on a final answer the check can no longer come,
// so it reads as not confirmed), verified, unverified. One plain line per result, read with the answer by the log.
var CHECK = {
  pending: ['Checking live price and stock\u2026'],
  verified: ['Live price and stock', 'M5 12.5l4.5 4.5L19 7.5'],
  unverified: ['Price and stock not confirmed', 'M12 3a9 9 0 1 1 0 18a9 9 0 1 1 0-18zM12 7.5v5.5M12 16.5v.01']
};

// t: the tool entry; fin: its answer is final; old: the element it replaces, whose product images are kept when unchanged.
function toolEl(t, fin, old) {
  var d = t.display || {}, e = h('div', { class: 'tool', 'data-call-id': t.call_id, 'data-tool-status': t.status }), u, k, c;
  if (d.type == 'products') {
    (d.items || []).forEach(function (p) { e.append(card(p, old)); });
    if (d.total) e.append(h('p', { class: 'total', text: 'Total: ' + money(d.total.amount, d.total.currency) }));
    k = t.status == 'shown' ? (fin ? 'unverified' : 'pending') : t.status;
    if ((c = CHECK[k])) e.append(h('p', { class: 'chk', 'data-check': k }, [c[1] ? icon('', c[1]) : null, c[0]]));
  } else if (d.type == 'text') e.append(h('p', { text: d.text }));
  else if (d.type == 'link' && (u = safeUrl(d.url, BASE))) e.append(link(d.title || u, u));
  return e;
}

function card(p, old) {
  var u = safeUrl(p.url, BASE), img = p.image && safeUrl(p.image, BASE, 1), av = String(p.availability || '').replace(/_/g, ' '), o;
  if (img && old) [].forEach.call(old.querySelectorAll('.card'), function (x) { if (x.dataset.productId == p.id && x.firstChild.src == img) o = x.firstChild; });
  return h('div', { class: 'card', 'data-product-id': p.id }, [
    img ? o || h('img', { src: img, alt: '', loading: 'lazy' }) : null,
    h('div', { class: 'info' }, [
      u ? link(p.title || u, u) : h('span', { class: 'ttl', text: p.title }),
      p.price != null ? h('span', { class: 'price', text: money(p.price, p.currency) + (p.quantity ? ' \u00d7 ' + p.quantity : '') }) : null,
      av ? h('span', { class: 'avail', text: av.charAt(0).toUpperCase() + av.slice(1) }) : null
    ])
  ]);
}

function money(a, c) {
  try { return new Intl.NumberFormat(D.documentElement.lang || undefined, { style: 'currency', currency: c }).format(a); } catch (e) { return a + (c ? ' ' + c : ''); }
}
