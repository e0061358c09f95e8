// Who the widget speaks for, and when it must not speak at all: reset() forgets the visitor, identify(jwt)
// carries the conversation to the user on any device, a site the tenant does not allow and a tenant whose
// kill switch is on get plain words and no session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { widgetPage, userToken, until } from './lib/index.mjs';
import {
  startWorld, newPage, openChat, say, waitAnswers, waitState, transcript, storedState, statusLine, SECRET,
} from './widget-support.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { await world?.close(); });

test('reset() forgets the visitor: token and session gone, transcript cleared, nothing after a reload', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'remember me?');
  await waitAnswers(page, 1);
  const before = await storedState(page);
  assert.ok(before.t && before.s, 'a visitor token and a session are kept');
  await page.evaluate(() => window.Switchboard.reset());
  assert.equal(await storedState(page), null);
  assert.equal(await page.locator('#switchboard-widget [data-seq]').count(), 0);
  await page.reload();
  await page.getByRole('button', { name: 'Open chat' }).click();
  await waitState(page, 'online');
  assert.equal(await page.locator('#switchboard-widget [data-seq]').count(), 0);
  // The next message starts a new visitor's conversation.
  await say(page, 'a new me');
  await waitAnswers(page, 1);
  const after = await storedState(page);
  assert.notEqual(after.t, before.t);
  assert.notEqual(after.s, before.s);
  const old = await world.server.request(`/v1/sessions/${before.s}`, { token: after.t, tenant: 'acme', origin: world.host.origin });
  assert.equal(old.status, 404);
  await page.context().close();
});

test('identify(jwt) links the visitor\'s conversation to the user, who sees it on another device', async () => {
  const jwt = userToken(SECRET, 'acme', 'alice', { name: 'Alice' });
  const laptop = await newPage(world.browser);
  await openChat(laptop, world.host.url('/'));
  await say(laptop, 'before login');
  await waitAnswers(laptop, 1);
  const visitor = await storedState(laptop);
  await laptop.evaluate((t) => window.Switchboard.identify(t), jwt);
  const afterLogin = await storedState(laptop);
  assert.equal(afterLogin.s, visitor.s, 'the same conversation goes on');
  assert.ok(!afterLogin.t, 'the visitor token is dropped');
  await waitState(laptop, 'online');
  await say(laptop, 'after login');
  await waitAnswers(laptop, 2);
  // The visitor token is no longer good for anything.
  const stale = await world.server.request(`/v1/sessions/${visitor.s}`, { token: visitor.t, tenant: 'acme', origin: world.host.origin });
  assert.equal(stale.status, 401);

  // A phone: another browser, the same user through data-token.
  const url = world.host.page('/signed-in', widgetPage({ server: world.server.url, tenant: 'acme', attrs: { token: jwt } }));
  const phone = await newPage(world.browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await openChat(phone, url);
  await until(async () => (await transcript(phone)).length === 4, { timeout: 15_000, message: 'the conversation on the phone' });
  const texts = (await transcript(phone)).filter((m) => m.role === 'user').map((m) => m.text);
  assert.deepEqual(texts, ['before login', 'after login']);
  // And a third context calling identify() itself.
  const tablet = await newPage(world.browser);
  await tablet.goto(world.host.url('/'));
  await tablet.evaluate((t) => window.Switchboard.identify(t), jwt);
  await tablet.getByRole('button', { name: 'Open chat' }).click();
  await until(async () => (await transcript(tablet)).length === 4, { timeout: 15_000, message: 'the conversation on the tablet' });
  // Another user on the tablet sees none of it.
  await tablet.evaluate((t) => window.Switchboard.identify(t), userToken(SECRET, 'acme', 'bob'));
  await until(async () => (await transcript(tablet)).length === 0, { message: 'bob sees nothing of alice' });
  for (const p of [laptop, phone, tablet]) await p.context().close();
});

test('a site the tenant does not allow is told so, and nothing is created', async () => {
  const url = world.host.page('/not-allowed', widgetPage({ server: world.server.url, tenant: 'elsewhere' }));
  const page = await newPage(world.browser);
  const calls = [];
  page.on('request', (r) => { if (r.url().startsWith(world.server.url)) calls.push(`${r.method()} ${new URL(r.url()).pathname}`); });
  await openChat(page, url);
  await waitState(page, 'error');
  assert.match(await statusLine(page).textContent(), /This site is not allowed to use this chat/);
  const refused = await page.evaluate(() => window.Switchboard.send('hello?').then(() => 'sent', (e) => e.code));
  assert.equal(refused, 'origin.forbidden');
  await page.getByLabel('Message').fill('typed anyway');
  await page.getByLabel('Message').press('Enter');
  assert.deepEqual(calls.filter((c) => !c.endsWith('/widget.js')), ['GET /v1/widget/bootstrap']);
  const sessions = await world.server.admin('/sessions', { tenant: 'elsewhere' });
  assert.equal(sessions.status, 200, JSON.stringify(sessions.body));
  assert.deepEqual(sessions.body.items, []);
  assert.equal(await page.locator('#switchboard-widget [data-seq]').count(), 0);
  await page.context().close();
});

test('a tenant whose kill switch is on shows that the chat is disabled', async () => {
  const url = world.host.page('/frozen', widgetPage({ server: world.server.url, tenant: 'frozen' }));
  const page = await newPage(world.browser);
  await openChat(page, url);
  await waitState(page, 'error');
  assert.match(await statusLine(page).textContent(), /disabled/);
  const refused = await page.evaluate(() => window.Switchboard.send('hello?').then(() => 'sent', (e) => e.code));
  assert.equal(refused, 'tenant.disabled');
  const sessions = await world.server.admin('/sessions', { tenant: 'frozen' });
  assert.deepEqual(sessions.body.items, []);
  await page.context().close();
});

test('a kill switch thrown during a conversation ends it in plain words', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'are you there');
  await waitAnswers(page, 1);
  let res = await world.server.admin('/tenants/acme/kill-switch', { method: 'PUT', body: { enabled: true, reason: 'test' } });
  assert.ok(res.status < 300, JSON.stringify(res.body));
  try {
    await waitState(page, 'error');
    assert.match(await statusLine(page).textContent(), /disabled/);
  } finally {
    res = await world.server.admin('/tenants/acme/kill-switch', { method: 'PUT', body: { enabled: false, reason: 'test over' } });
    assert.ok(res.status < 300, JSON.stringify(res.body));
  }
  // "Try again" brings it back once the switch is off.
  await page.getByRole('button', { name: 'Try again' }).click();
  await waitState(page, 'online');
  await say(page, 'back again');
  await waitAnswers(page, 2);
  await page.context().close();
});
