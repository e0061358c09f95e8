// The widget keeps the conversation whole through a page reload, a server killed and restarted mid-answer,
// WebSockets that never work (SSE fallback), and an agent taking the conversation over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { agentToken, until } from './lib/index.mjs';
import {
  startWorld, newPage, openChat, say, waitAnswers, waitState, transcript, storedState, assertMatchesServer,
  SECRET, COUNT,
} from './widget-support.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { await world?.close(); });

const words = (page) => page.locator('#switchboard-widget [data-role="assistant"][data-seq]').last().textContent().then((t) => (t.match(/word\d+/g) || []).length).catch(() => 0);

test('a reload in the middle of an answer brings the history back and the answer completes', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'slow please');
  await until(async () => (await words(page)) >= 5, { message: 'five words streamed' });
  await page.reload();
  // History and the answer come back without opening the panel; open it to read.
  await page.getByRole('button', { name: 'Open chat' }).click();
  await page.locator('#switchboard-widget [data-role="user"][data-seq]').filter({ hasText: 'slow please' }).waitFor();
  const resumed = await words(page);
  assert.ok(resumed >= 5 && resumed < 40, `the answer is resumed mid-stream (${resumed} words)`);
  const shown = await waitAnswers(page, 1, 30_000);
  assert.deepEqual(shown.map((m) => [m.seq, m.role, m.status]), [[1, 'user', 'complete'], [2, 'assistant', 'complete']]);
  assert.equal(shown[1].text, COUNT);
  await assertMatchesServer(assert, world, page);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('SIGKILL mid-answer and a restart on the same data: the widget reconnects by itself, nothing lost or doubled', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'first question');
  await waitAnswers(page, 1);
  await say(page, 'slow again');
  await until(async () => (await words(page)) >= 12, { message: 'twelve words streamed' });
  await world.server.kill();
  await waitState(page, 'reconnecting');
  await world.server.restart();
  await waitState(page, 'online', 30_000);
  // The answer the dead process was writing ends as interrupted, with the text it had saved.
  const shown = await waitAnswers(page, 2, 30_000);
  assert.deepEqual(shown.map((m) => [m.seq, m.role]), [[1, 'user'], [2, 'assistant'], [3, 'user'], [4, 'assistant']]);
  assert.equal(shown[3].status, 'interrupted');
  assert.ok(COUNT.startsWith(shown[3].text.replace(/This answer was interrupted\.$/, '').trim()), shown[3].text);
  // The conversation goes on.
  await say(page, 'after the restart');
  await waitAnswers(page, 3, 30_000);
  const after = await assertMatchesServer(assert, world, page);
  assert.deepEqual(after.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(after[5].status, 'complete');
  assert.equal((await transcript(page)).filter((m) => m.role === 'user' && m.text === 'after the restart').length, 1);
  await page.context().close();
});

test('when WebSockets never open, the widget falls back to SSE and POST /v1/chat', async () => {
  const page = await newPage(world.browser);
  await page.addInitScript(() => {
    window.WebSocket = class {
      constructor() { setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 5); }
      send() {}
      close() {}
    };
  });
  const requests = [];
  page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  await openChat(page, world.host.url('/'));
  await waitState(page, 'online', 20_000);
  await page.evaluate(() => window.Switchboard.setContext({ page: '/checkout' }));
  await say(page, 'over sse');
  const shown = await waitAnswers(page, 1);
  assert.equal(shown.at(-1).status, 'complete');
  assert.ok(requests.some((r) => /^GET \/v1\/sessions\/[^/]+\/events$/.test(r)), requests.join('\n'));
  assert.ok(requests.includes('POST /v1/chat'), requests.join('\n'));
  assert.ok(requests.includes('POST /v1/tickets'), requests.join('\n'));
  // A reload resumes over SSE too, with the history.
  await page.reload();
  await page.getByRole('button', { name: 'Open chat' }).click();
  await until(async () => (await transcript(page)).length === 2, { timeout: 20_000, message: 'history after reload' });
  await assertMatchesServer(assert, world, page);
  await page.context().close();
});

test('an agent takes over: a banner names them, their messages show their name, and it goes when they leave', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'I need help');
  await waitAnswers(page, 1);
  const sid = (await storedState(page)).s;
  const ada = agentToken(SECRET, 'acme', 'ada-1', 'Ada');
  let res = await world.server.request(`/v1/admin/sessions/${sid}/takeover`, { method: 'POST', token: ada, body: {} });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const banner = page.locator('#switchboard-widget [data-banner="takeover"]');
  await banner.waitFor();
  assert.equal(await banner.textContent(), 'Ada joined');
  assert.equal(await page.getByRole('log').locator('[data-banner]').count(), 0, 'the banner is outside the log');
  // With the panel closed, the agent's message marks the launcher.
  await page.getByRole('button', { name: 'Close chat' }).click();
  res = await world.server.request(`/v1/admin/sessions/${sid}/messages`, { method: 'POST', token: ada, body: { content: 'Hi, this is **Ada**.' } });
  assert.ok(res.status < 300, JSON.stringify(res.body));
  const agentMsg = page.locator('#switchboard-widget [data-role="agent"][data-seq]');
  await agentMsg.waitFor({ state: 'attached' });
  await page.locator('#switchboard-widget .unread').waitFor({ state: 'attached' });
  await page.getByRole('button', { name: 'Open chat' }).click();
  assert.equal(await page.locator('#switchboard-widget .unread').count(), 0);
  assert.equal(await agentMsg.getAttribute('data-author'), 'Ada');
  assert.match(await agentMsg.textContent(), /^Ada/);
  // The visitor's reply reaches the agent (no model answers it).
  const reply = await page.evaluate(() => window.Switchboard.send('thanks Ada').then((m) => m.role));
  assert.equal(reply, 'user');
  // A reload shows the banner again, from the session object.
  await page.reload();
  await page.getByRole('button', { name: 'Open chat' }).click();
  await banner.waitFor();
  res = await world.server.request(`/v1/admin/sessions/${sid}/release`, { method: 'POST', token: ada, body: {} });
  assert.ok(res.status < 300, JSON.stringify(res.body));
  await banner.waitFor({ state: 'detached' });
  await assertMatchesServer(assert, world, page);
  await page.context().close();
});

test('a closed conversation says so and offers a new one', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'close me');
  await waitAnswers(page, 1);
  const sid = (await storedState(page)).s;
  const res = await world.server.admin(`/sessions/${sid}/close`, { method: 'POST', tenant: 'acme', body: {} });
  assert.ok(res.status < 300, JSON.stringify(res.body));
  const refused = await page.evaluate(() => window.Switchboard.send('still there?').then(() => 'sent', (e) => e.code));
  assert.equal(refused, 'session.closed');
  await waitState(page, 'error');
  const again = page.getByRole('button', { name: 'Start a new conversation' });
  await again.click();
  await until(async () => (await storedState(page))?.s && (await storedState(page)).s !== sid, { message: 'a new session' });
  assert.equal(await page.locator('#switchboard-widget [data-seq]').count(), 0);
  await say(page, 'fresh start');
  await waitAnswers(page, 1);
  await page.context().close();
});

test('offline: the widget says so, keeps what is typed and sent, and delivers it when the network is back', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'before going offline');
  await waitAnswers(page, 1);
  await page.context().setOffline(true);
  await waitState(page, 'offline');
  assert.match(await page.getByRole('status').textContent(), /offline/);
  await page.context().setOffline(false);
  await waitState(page, 'online');
  await say(page, 'back online');
  await waitAnswers(page, 2);
  await assertMatchesServer(assert, world, page);
  await page.context().close();
});
