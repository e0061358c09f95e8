// The widget against a scripted WebSocket peer (the real server answers HTTP): the frames it sends (hello
// cursors, client_message_id kept across a resend) and how it applies what it gets (deltas by revision and
// offset, replace, resync on a gap, product cards updated in place, typing that expires, handoff, refusals).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './lib/index.mjs';
import { startWorld, newPage, openChat, say, waitState, transcript } from './widget-support.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { await world?.close(); });

/**
 * Routes the page's WebSocket to a script. `onMessage(frame, peer)` answers each client `message` frame.
 * peer.send(obj) sends a frame; peer.hellos / peer.messages record what the widget sent; peer.socket is the live one.
 */
async function scriptedPeer(page, onMessage, { welcome = (hello) => ({ type: 'welcome', connection_id: 'c', session: session(hello.session_id), latest_seq: 0 }) } = {}) {
  const peer = { hellos: [], messages: [], socket: null, sockets: 0, send: (f) => peer.socket.send(JSON.stringify(f)) };
  await page.routeWebSocket(/\/v1\/ws/, (ws) => {
    peer.sockets += 1;
    peer.socket = ws;
    ws.onMessage((text) => {
      const f = JSON.parse(text);
      if (f.type === 'hello') {
        peer.hellos.push(f);
        const w = welcome(f, peer);
        if (w) ws.send(JSON.stringify(w));
      } else if (f.type === 'message') {
        peer.messages.push(f);
        onMessage(f, peer, ws);
      }
    });
  });
  return peer;
}

const session = (id, extra = {}) => ({ id, tenant_id: 'acme', status: 'active', created_at: 'x', last_activity_at: 'x', message_count: 0, admin_assisted: false, latest_seq: 0, takeover: null, ...extra });
const message = (f, seq, extra = {}) => ({ type: 'message', session_id: f.session_id, seq, role: 'user', content: f.content, author: null, status: 'complete', created_at: 'x', token_count: 1, client_message_id: f.client_message_id ?? null, tools: [], ...extra });
const final = (sid, seq, content, tools = []) => ({ session_id: sid, seq, role: 'assistant', content, author: null, status: 'complete', created_at: 'x', token_count: 3, client_message_id: null, tools });
const answerText = (page) => page.locator('#switchboard-widget [data-role="assistant"][data-seq] .body').last().textContent();

test('deltas apply by revision and offset: repeats and older revisions dropped, replace honoured, stream_end final', async () => {
  const page = await newPage(world.browser);
  let sid;
  const peer = await scriptedPeer(page, (f, p) => {
    sid = f.session_id;
    p.send(message({ ...f, session_id: sid }, 1));
    p.send({ type: 'typing', session_id: sid, who: 'assistant', active: true });
    p.send({ type: 'stream_start', session_id: sid, turn_id: 't1', seq: 2, user_seq: 1 });
  });
  await openChat(page, world.host.url('/'));
  await say(page, 'hello');
  await until(() => peer.messages.length === 1);
  await page.locator('#switchboard-widget [data-typing="assistant"]').waitFor();
  const d = (revision, offset, text) => peer.send({ type: 'stream_delta', session_id: sid, turn_id: 't1', seq: 2, revision, offset, text });
  d(0, 0, 'Héllo 👋 ');
  await until(async () => (await answerText(page)) === 'Héllo 👋 ');
  assert.equal(await page.locator('#switchboard-widget [data-typing]').count(), 0, 'text ends the typing indicator');
  d(0, 0, 'Héllo 👋 '); // a repeat
  d(0, 6, '👋 wor'); // overlaps: only "wor" is new (offsets count code points, not UTF-16 units)
  await until(async () => (await answerText(page)) === 'Héllo 👋 wor');
  peer.send({ type: 'stream_replace', session_id: sid, turn_id: 't1', seq: 2, revision: 1, text: 'Hello, ' });
  d(0, 10, 'ld (old revision)');
  d(1, 7, 'world');
  await until(async () => (await answerText(page)) === 'Hello, world');
  peer.send({ type: 'stream_end', session_id: sid, turn_id: 't1', seq: 2, message: final(sid, 2, 'Hello, world!'), usage: {}, latency_ms: {}, finish_reason: 'stop' });
  await until(async () => (await transcript(page)).at(-1)?.status === 'complete');
  assert.equal(await answerText(page), 'Hello, world!');
  assert.deepEqual((await transcript(page)).map((m) => [m.seq, m.role]), [[1, 'user'], [2, 'assistant']]);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a gap in the deltas makes the widget resync, resuming from its last final seq', async () => {
  const page = await newPage(world.browser);
  let sid;
  const peer = await scriptedPeer(page, (f, p) => {
    sid = f.session_id;
    p.send(message(f, 1));
    p.send({ type: 'stream_start', session_id: sid, turn_id: 't1', seq: 2, user_seq: 1 });
    p.send({ type: 'stream_delta', session_id: sid, turn_id: 't1', seq: 2, revision: 0, offset: 0, text: 'one ' });
    p.send({ type: 'stream_delta', session_id: sid, turn_id: 't1', seq: 2, revision: 0, offset: 9, text: 'three ' });
  }, {
    welcome: (hello, p) => {
      if (p.hellos.length === 2) {
        // The resumed stream: the answer replayed with its live text, then its deltas.
        setTimeout(() => {
          p.send(message({ session_id: hello.session_id }, 2, { role: 'assistant', content: 'one two three ', status: 'streaming', revision: 0 }));
          p.send({ type: 'stream_delta', session_id: hello.session_id, turn_id: 't1', seq: 2, revision: 0, offset: 14, text: 'four' });
        }, 10);
      }
      return { type: 'welcome', connection_id: 'c', session: session(hello.session_id), latest_seq: 1 };
    },
  });
  await openChat(page, world.host.url('/'));
  await say(page, 'count');
  await until(() => peer.hellos.length === 2, { message: 'a second hello' });
  assert.equal(peer.hellos[0].last_event_id, 0);
  assert.equal(peer.hellos[1].last_event_id, 1);
  assert.equal(peer.hellos[1].token, peer.hellos[0].token);
  assert.deepEqual(peer.hellos[1].context, { tenant_id: 'acme' });
  await until(async () => (await answerText(page)) === 'one two three four');
  await page.context().close();
});

test('a message not acknowledged before the socket drops is sent again with the same client_message_id', async () => {
  const page = await newPage(world.browser);
  const peer = await scriptedPeer(page, (f, p, ws) => {
    if (p.messages.length === 1) ws.close({ code: 1001, reason: 'going away' });
    else p.send(message(f, 1));
  });
  await openChat(page, world.host.url('/'));
  await page.evaluate(() => window.Switchboard.setContext({ page: '/product/42' }));
  const sent = page.evaluate(() => window.Switchboard.send('only once').then((m) => m.seq));
  await until(() => peer.messages.length === 2, { message: 'the resend' });
  assert.equal(await sent, 1);
  assert.equal(peer.messages[0].client_message_id, peer.messages[1].client_message_id);
  assert.match(peer.messages[0].client_message_id, /^[A-Za-z0-9_-]{1,64}$/);
  assert.deepEqual(peer.messages.map((m) => [m.content, m.context]), [['only once', { page: '/product/42' }], ['only once', { page: '/product/42' }]]);
  assert.equal(await page.locator('#switchboard-widget [data-role="user"]').count(), 1);
  await page.context().close();
});

test('chat.cursor_invalid: the widget reloads the history and reconnects without a cursor', async () => {
  const page = await newPage(world.browser);
  const peer = await scriptedPeer(page, (f, p, ws) => {
    p.send(message(f, 1));
    setTimeout(() => ws.close({ code: 1001 }), 20);
  }, {
    welcome: (hello, p) => {
      if (p.hellos.length === 2) {
        p.send({ type: 'error', session_id: null, error: { code: 'chat.cursor_invalid', message: 'Bad cursor', http_status: 410, trace_id: 't' } });
        p.socket.close({ code: 4003 });
        return null;
      }
      return { type: 'welcome', connection_id: 'c', session: session(hello.session_id), latest_seq: 1 };
    },
  });
  const history = [];
  page.on('request', (r) => { if (/\/messages\?/.test(r.url())) history.push(r.url()); });
  await openChat(page, world.host.url('/'));
  await say(page, 'hi');
  await until(() => peer.hellos.length === 3, { message: 'a third hello' });
  assert.equal(peer.hellos[1].last_event_id, 1);
  assert.equal('last_event_id' in peer.hellos[2], false);
  await until(() => history.length === 1, { message: 'history reloaded over REST' });
  assert.match(history[0], /limit=50/);
  await waitState(page, 'online');
  await page.context().close();
});

test('product cards render from tool events, keyed by call_id and updated in place when verified', async () => {
  const page = await newPage(world.browser);
  let sid;
  const item = (price, availability) => ({ id: 'p1', title: 'Trail Runner', price, currency: 'EUR', availability, url: '/demo#p1', image: '/demo/img/runner.svg' });
  const peer = await scriptedPeer(page, (f, p) => {
    sid = f.session_id;
    p.send(message(f, 1));
    p.send({ type: 'stream_start', session_id: sid, turn_id: 't1', seq: 2, user_seq: 1 });
    p.send({ type: 'tool', session_id: sid, turn_id: 't1', call_id: 'call_1', name: 'search_products', status: 'running' });
    p.send({ type: 'tool', session_id: sid, turn_id: 't1', call_id: 'call_1', name: 'search_products', status: 'shown', display: { type: 'products', items: [item(89.9, 'in_stock'), { id: 'p2', title: 'Evil', price: 1, currency: 'EUR', url: 'javascript:alert(1)', image: 'javascript:alert(2)' }] } });
    p.send({ type: 'stream_delta', session_id: sid, turn_id: 't1', seq: 2, revision: 0, offset: 0, text: 'Here you go.' });
  });
  await openChat(page, world.host.url('/'));
  await say(page, 'shoes');
  await until(() => peer.messages.length === 1);
  const tool = page.locator('#switchboard-widget [data-call-id="call_1"]');
  await until(async () => (await tool.getAttribute('data-tool-status').catch(() => null)) === 'shown');
  const cards = tool.locator('.card');
  assert.equal(await cards.count(), 2);
  const first = cards.first();
  assert.equal(await first.locator('a').getAttribute('href'), `${world.server.url}/demo#p1`);
  assert.equal(await first.locator('a').getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await first.locator('img').getAttribute('src'), `${world.server.url}/demo/img/runner.svg`);
  assert.match(await first.textContent(), /Trail Runner.*89[.,]90.*In stock/);
  assert.equal(await cards.nth(1).locator('a, img').count(), 0, 'a javascript: URL gives neither link nor image');
  // While the shop checks, one quiet line under the cards says so (a plain line: the one role="status" stays the panel's).
  const check = tool.locator('.chk');
  assert.deepEqual(await check.evaluateAll((els) => els.map((e) => [e.dataset.check, e.textContent])), [['pending', 'Checking live price and stock…']]);
  assert.equal(await page.locator('#switchboard-widget [role="status"]').count(), 1);
  await first.locator('img').evaluate((img) => { img.__kept = true; });
  // Verified live: the same card, a new price, the same picture element (not loaded again).
  peer.send({ type: 'tool', session_id: sid, turn_id: 't1', call_id: 'call_1', name: 'search_products', status: 'verified', display: { type: 'products', items: [item(79.9, 'low_stock')] } });
  await until(async () => (await tool.getAttribute('data-tool-status')) === 'verified');
  assert.equal(await page.locator('#switchboard-widget [data-call-id="call_1"]').count(), 1);
  assert.match(await tool.textContent(), /79[.,]90.*Low stock/);
  assert.deepEqual(await check.evaluateAll((els) => els.map((e) => [e.dataset.check, e.textContent, !!e.querySelector('svg[aria-hidden="true"]')])), [['verified', 'Live price and stock', true]]);
  assert.equal(await cards.first().locator('img').evaluate((img) => img.__kept === true), true, 'the picture element is kept');
  peer.send({ type: 'stream_end', session_id: sid, turn_id: 't1', seq: 2, message: final(sid, 2, 'Here you go.', [{ call_id: 'call_1', name: 'search_products', status: 'verified', display: { type: 'products', items: [item(79.9, 'low_stock')] } }]), usage: {}, latency_ms: {}, finish_reason: 'stop' });
  await until(async () => (await transcript(page)).at(-1)?.status === 'complete');
  assert.equal(await page.locator('#switchboard-widget [data-call-id="call_1"] .card').count(), 1);
  assert.deepEqual(await check.evaluateAll((els) => els.map((e) => e.dataset.check)), ['verified']);

  // A second answer whose check failed, then one that ended (interrupted) with its check never told: not confirmed, both;
  // a result without a check (`done`) has no line.
  const turn = (n, status, checked, end) => {
    const seq = 2 * n;
    const items = [item(89.9, 'in_stock')];
    peer.send(message({ session_id: sid, content: `q${n}` }, seq - 1));
    peer.send({ type: 'stream_start', session_id: sid, turn_id: `t${n}`, seq, user_seq: seq - 1 });
    peer.send({ type: 'tool', session_id: sid, turn_id: `t${n}`, call_id: `call_${n}`, name: 'search_products', status, display: { type: 'products', items } });
    if (checked) peer.send({ type: 'tool', session_id: sid, turn_id: `t${n}`, call_id: `call_${n}`, name: 'search_products', status: checked, display: { type: 'products', items } });
    peer.send({ type: 'stream_end', session_id: sid, turn_id: `t${n}`, seq, message: { ...final(sid, seq, 'Here.', [{ call_id: `call_${n}`, name: 'search_products', status: checked || status, display: { type: 'products', items } }]), status: end }, usage: {}, latency_ms: {}, finish_reason: 'stop' });
  };
  turn(2, 'shown', 'unverified', 'complete');
  turn(3, 'shown', null, 'interrupted');
  turn(4, 'done', null, 'complete');
  await until(async () => (await transcript(page)).length === 8);
  const lines = await page.locator('#switchboard-widget [data-call-id]').evaluateAll((els) => els.map((e) => [e.dataset.callId, e.dataset.toolStatus, e.querySelector('.chk')?.dataset.check ?? null, e.querySelector('.chk')?.textContent ?? null]));
  assert.deepEqual(lines, [
    ['call_1', 'verified', 'verified', 'Live price and stock'],
    ['call_2', 'unverified', 'unverified', 'Price and stock not confirmed'],
    ['call_3', 'shown', 'unverified', 'Price and stock not confirmed'],
    ['call_4', 'done', null, null],
  ]);
  await page.context().close();
});

test('typing expires by itself after 8 s; handoff shows a line; a rate limit is told in plain words', async () => {
  const page = await newPage(world.browser);
  await page.clock.install();
  let sid;
  const peer = await scriptedPeer(page, (f, p) => {
    sid = f.session_id;
    if (p.messages.length === 1) {
      p.send(message(f, 1));
      p.send({ type: 'handoff', session_id: sid, status: 'waiting', reason: 'asked for a person' });
      p.send({ type: 'typing', session_id: sid, who: 'agent', active: true });
    } else {
      p.send({ type: 'error', session_id: sid, error: { code: 'rate_limited', message: 'Too many requests', http_status: 429, trace_id: 't' } });
    }
  });
  await openChat(page, world.host.url('/'));
  await say(page, 'a person please');
  const typing = page.locator('#switchboard-widget [data-typing="agent"]');
  await typing.waitFor();
  assert.equal(await typing.getAttribute('data-seq'), null);
  assert.equal(await page.locator('#switchboard-widget .note').count(), 1);
  await page.clock.fastForward(9000);
  await typing.waitFor({ state: 'detached' });

  const refused = page.evaluate(() => window.Switchboard.send('again').then(() => 'sent', (e) => e.code));
  assert.equal(await refused, 'rate_limited');
  await waitState(page, 'error');
  assert.match(await page.getByRole('status').textContent(), /too quickly/);
  assert.equal(await page.locator('#switchboard-widget [data-role="user"]').count(), 1, 'the refused message is not shown as sent');
  await page.clock.fastForward(6000);
  await until(async () => /send messages again/.test(await page.getByRole('status').textContent()));
  assert.equal(peer.messages.length, 2);
  await page.context().close();
});
