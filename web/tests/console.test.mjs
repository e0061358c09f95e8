// The agent console at /admin, driven like an agent and an operator use it: sign in (agent JWT, operator
// token, bad tokens), the sessions table's filters, sort and keyset paging over seeded sessions, the live
// transcript, tool calls (live, then in full), the visitor's page, takeover of a visitor's chat in the
// widget on another origin, the kill switch, the audit log, usage, accessibility (axe-core) and screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, tenantToml, startHost, widgetPage, startFakeOpenAI, toolResults, startMerchant, launchBrowser, until,
  screenshot, seriousViolations, agentToken, userToken, OPERATOR_TOKEN,
} from './lib/index.mjs';

const SECRET = 'console-browser-tests-hs256-secret-0123456789';
/** Rows per page of the console's table (web/admin/sessions.js PAGE_SIZE). */
const PAGE_SIZE = 25;
/** The console polls its page every 5 s; a change must show within two polls and some slack. */
const POLL_WAIT = 14_000;
const SEEDED = 60;
const FANCY = 'Grüße 👋🏽 from the café: naïve 𝒳 e\u0301 done.';
const RELAXED = '[tenants.rate_limits]\nip = { limit = 100000, window_secs = 60 }\n' +
  'user = { limit = 100000, window_secs = 60 }\ntenant = { limit = 100000, window_secs = 60 }';

/** What the merchant's slow search answers: a title with HTML in it, which must show as text. */
const FOUND = { found: 1, items: [{ id: 'p1', title: '<img src=x onerror=alert(1)> Runner', price: '99' }] };
/** How long the merchant's search takes, so the console can see the call running. */
const SEARCH_MS = 1500;
/** The shop's tools (SPEC §16): a slow search on the merchant, and a stock check the model calls with bad JSON. */
const TOOLS = [
  { name: 'search_products', description: 'Search the catalog', timeout_ms: 5000,
    parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] } },
  { name: 'check_stock', description: 'Stock of one product', timeout_ms: 5000,
    parameters: { type: 'object', properties: { sku: { type: 'string' } }, required: ['sku'] } },
];

let upstream;
let merchant;
let host;
let server;
let browser;
/** Every seeded session of `shop`, as the admin API lists it. */
let seeded = [];

let toolTurns = 0;
function reply(question, body) {
  if (question.includes('use the tools')) {
    if (toolResults(body).length) return { text: 'Here is what I found.', delayMs: 0 };
    toolTurns += 1;
    return { toolCalls: [
      { id: `call_find${toolTurns}`, name: 'search_products', arguments: { query: 'running shoes' } },
      { id: `call_stock${toolTurns}`, name: 'check_stock', arguments: '{"sku": ' },
    ] };
  }
  if (question.includes('slow')) return { text: `${FANCY} ${Array.from({ length: 30 }, (_, i) => `w${i}`).join(' ')}`, delayMs: 60 };
  if (question.includes('fancy')) return { text: FANCY, delayMs: 5 };
  return { text: `Answer to: ${question}`, delayMs: 0 };
}

const ada = (tenant = 'shop') => agentToken(SECRET, tenant, 'ada', 'Ada');

/** An end-user call from the host site's origin. */
function endUser(tenant, pathname, { method = 'POST', token, body } = {}) {
  return server.request(pathname, { method, tenant, token, origin: host.origin, body });
}

async function newSession(tenant, user) {
  const token = user ? userToken(SECRET, tenant, user) : undefined;
  const res = await endUser(tenant, '/v1/sessions', { token, body: {} });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { id: res.body.session.id, token: token || res.body.token };
}

async function chat(tenant, s, message) {
  const res = await endUser(tenant, '/v1/chat', { token: s.token, body: { session_id: s.id, message, stream: false } });
  assert.ok(res.status === 200 || res.status === 202, JSON.stringify(res.body));
  return res.body;
}

async function adminPost(tenant, pathname) {
  const res = await server.request(`/v1/admin${pathname}`, { method: 'POST', token: ada(tenant), body: {} });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

/** 60 sessions of `shop`: alice, bob and visitors; 0–3 turns each; some taken over, some released, some closed. */
async function seed() {
  for (let i = 0; i < SEEDED; i++) {
    const user = ['alice', 'bob', null][i % 3];
    const s = await newSession('shop', user);
    for (let k = 0; k < i % 4; k++) await chat('shop', s, `question ${i}.${k}`);
    if (i % 5 === 0) await adminPost('shop', `/sessions/${s.id}/takeover`);
    if (i % 10 === 0) await adminPost('shop', `/sessions/${s.id}/release`);
    if (i % 10 === 9) await adminPost('shop', `/sessions/${s.id}/close`);
  }
  const res = await server.admin('/sessions?limit=200', { tenant: 'shop' });
  assert.equal(res.status, 200);
  return res.body.items;
}

before(async () => {
  upstream = await startFakeOpenAI({ reply });
  merchant = await startMerchant({
    tools: {
      search_products: async () => {
        await new Promise((r) => setTimeout(r, SEARCH_MS));
        return { result: FOUND, display: { type: 'text', text: 'Found one' } };
      },
    },
  });
  host = await startHost();
  const tenant = (id, name, tools = []) => tenantToml({
    id, name, origins: [host.origin], jwtSecretEnv: 'CONSOLE_JWT_SECRET', upstream: upstream.url, extra: RELAXED,
    tools: tools.map((t) => ({ ...t, url: merchant.url, secret_env: 'CONSOLE_TOOL_SECRET' })),
  });
  // The merchant listens on 127.0.0.1: tools may call it only when the operator allows it.
  const config = ['tool_allow_private = ["127.0.0.1"]', tenant('shop', 'Shop', TOOLS), tenant('acme', 'Acme Shop'),
    tenant('kiosk', 'Kiosk')].join('\n');
  server = await startServer({ config, env: { CONSOLE_JWT_SECRET: SECRET, CONSOLE_TOOL_SECRET: merchant.secret } });
  browser = await launchBrowser();
  host.page('/', () => widgetPage({ server: server.url, tenant: 'acme' }));
  seeded = await seed();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.close().catch(() => {});
  await host?.close().catch(() => {});
  await upstream?.close().catch(() => {});
  await merchant?.close().catch(() => {});
});

/** A console page in its own context (UTC, so datetime-local values are UTC), collecting CSP reports and errors. */
async function consolePage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', ...options });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push(m.text()); });
  await page.goto(`${server.url}/admin`);
  return page;
}

async function signIn(page, token) {
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The rows of the sessions table as {id, user, status, messages, assisted}. */
function rows(page) {
  return page.locator('#sessions-body tr').evaluateAll((trs) => trs.map((tr) => ({
    id: tr.dataset.id,
    user: tr.cells[1].textContent,
    status: tr.cells[2].textContent,
    messages: Number(tr.cells[5].textContent),
    assisted: tr.cells[6].textContent,
  })));
}

/** Waits until the table's rows satisfy `check` (returns them). */
async function waitRows(page, check, message, timeout = 10_000) {
  let last = [];
  await until(async () => { last = await rows(page); return last.length > 0 && check(last); },
    { timeout, message: `${message}; rows: ${JSON.stringify(last.slice(0, 3))}…(${last.length})` });
  return last;
}

const label = (page, name) => page.getByLabel(name, { exact: true });

test('an agent signs in with a JWT; bad tokens get a plain error and stay on sign-in; sign out forgets the token', async () => {
  const page = await consolePage();
  await signIn(page, 'not-a-token');
  const error = page.locator('#signin-error');
  await error.waitFor();
  assert.match(await error.textContent(), /token was not accepted.*Trace id [0-9a-f]{32}\./);
  assert.ok(await page.getByLabel('Token').isVisible(), 'still on sign-in');

  await signIn(page, userToken(SECRET, 'shop', 'alice'));
  await until(async () => /without the admin role/.test(await error.textContent()), { message: 'role error' });

  await signIn(page, ada());
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.match(await page.locator('#who').textContent(), /Ada · agent of shop/);
  await waitRows(page, (r) => r.length === PAGE_SIZE, 'a full first page');
  assert.equal(await page.getByLabel('Tenant', { exact: true }).isVisible(), false, 'agents pick no tenant');
  assert.equal(await page.getByRole('button', { name: 'Kill switch and audit' }).isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 1);
  assert.equal(await page.evaluate(() => localStorage.getItem('switchboard.console.token')), null);

  // A reload keeps the tab signed in (sessionStorage); sign out forgets.
  await page.reload();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Token').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.console.token')), null);
  await page.reload();
  await page.getByLabel('Token').waitFor();
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the operator signs in, picks a tenant, and sees the operator-only section', async () => {
  const page = await consolePage();
  await signIn(page, OPERATOR_TOKEN);
  const select = page.getByLabel('Tenant', { exact: true });
  await select.waitFor();
  const options = await select.locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options.sort(), ['acme', 'kiosk', 'shop']);
  await select.selectOption('shop');
  await waitRows(page, (r) => r.length === PAGE_SIZE && r.every((row) => seeded.some((s) => s.id === row.id)), 'shop sessions');
  await select.selectOption('kiosk');
  await page.locator('#list-empty').waitFor();
  assert.ok(await page.getByRole('button', { name: 'Kill switch and audit' }).isVisible());
  assert.equal(await page.locator('#who').textContent(), 'Operator');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('filters, sort and keyset paging over 60 seeded sessions', async () => {
  const page = await consolePage();
  await signIn(page, ada());
  await waitRows(page, (r) => r.length === PAGE_SIZE, 'first page');

  // Paging: newest first, 25 + 25 + 10, every session once; "First page" goes back.
  const byCreatedDesc = [...seeded].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1));
  const seen = [];
  for (let p = 0; p < 3; p++) {
    const want = byCreatedDesc.slice(p * PAGE_SIZE, (p + 1) * PAGE_SIZE).map((s) => s.id);
    const got = await waitRows(page, (r) => r[0].id === want[0] && r.length === want.length, `page ${p + 1}`);
    assert.deepEqual(got.map((r) => r.id), want);
    assert.equal(await page.locator('#page-no').textContent(), String(p + 1));
    seen.push(...got.map((r) => r.id));
    if (p < 2) await page.getByRole('button', { name: 'Next page' }).click();
  }
  assert.ok(await page.getByRole('button', { name: 'Next page' }).isDisabled(), 'no page after the last');
  assert.equal(new Set(seen).size, SEEDED);
  await page.getByRole('button', { name: 'First page' }).click();
  await waitRows(page, (r) => r[0].id === byCreatedDesc[0].id, 'back on page 1');

  // Status badges.
  for (const status of ['active', 'human', 'closed']) {
    await label(page, 'Status').selectOption(status);
    const want = seeded.filter((s) => s.status === status).length;
    const got = await waitRows(page, (r) => r.length === Math.min(want, PAGE_SIZE) && r.every((x) => x.status === status), `status ${status}`);
    assert.ok(got.length > 0);
    assert.equal(await page.locator(`#sessions-body .badge[data-status="${status}"]`).count(), got.length);
  }
  await label(page, 'Status').selectOption('');

  // User (the JWT sub) and Assisted.
  await label(page, 'User').fill('bob');
  await label(page, 'User').press('Enter');
  const bobs = seeded.filter((s) => s.user_id === 'bob').length;
  await waitRows(page, (r) => r.length === bobs && r.every((x) => x.user === 'bob'), 'bob only');
  await label(page, 'Assisted').selectOption('true');
  const bobAssisted = seeded.filter((s) => s.user_id === 'bob' && s.admin_assisted).length;
  await waitRows(page, (r) => r.length === bobAssisted && r.every((x) => x.user === 'bob' && x.assisted === 'yes'), 'bob, assisted');
  await page.getByRole('button', { name: 'Reset filters' }).click();
  await waitRows(page, (r) => r.length === PAGE_SIZE, 'filters reset');

  // Sort by message_count, both orders.
  await label(page, 'Sort').selectOption('message_count');
  const max = Math.max(...seeded.map((s) => s.message_count));
  const desc = await waitRows(page, (r) => r[0].messages === max, 'most messages first');
  assert.deepEqual(desc.map((r) => r.messages), [...desc.map((r) => r.messages)].sort((a, b) => b - a));
  await label(page, 'Order').selectOption('asc');
  const min = Math.min(...seeded.map((s) => s.message_count));
  const asc = await waitRows(page, (r) => r[0].messages === min, 'fewest messages first');
  assert.deepEqual(asc.map((r) => r.messages), [...asc.map((r) => r.messages)].sort((a, b) => a - b));

  // Created from / Created to: datetime-local in the browser's zone (UTC here), sent as RFC 3339.
  await page.getByRole('button', { name: 'Reset filters' }).click();
  const pivot = byCreatedDesc[30].created_at; // a seeded session's creation time
  const second = pivot.slice(0, 19); // its whole second, as a datetime-local value
  const request = page.waitForRequest((r) => r.url().includes('created_from='));
  await label(page, 'Created from').fill(second);
  const url = new URL((await request).url());
  assert.equal(url.searchParams.get('created_from'), `${second}.000Z`);
  const from = seeded.filter((s) => s.created_at >= `${second}.000Z`).length;
  await waitRows(page, (r) => r.length === Math.min(from, PAGE_SIZE) && r.every((x) => seeded.find((s) => s.id === x.id).created_at >= `${second}.000Z`), 'created from');
  await label(page, 'Created from').fill('');
  await label(page, 'Created to').fill(second);
  const to = seeded.filter((s) => s.created_at <= `${second}.999Z`).length;
  await waitRows(page, (r) => r.length === Math.min(to, PAGE_SIZE) && r.every((x) => seeded.find((s) => s.id === x.id).created_at <= `${second}.999Z`), 'created to');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('new activity appears without a reload, and the reader keeps their page', async () => {
  const page = await consolePage();
  await signIn(page, ada());
  await label(page, 'Sort').selectOption('last_activity_at');
  const first = await waitRows(page, (r) => r.length === PAGE_SIZE, 'by activity');
  // A quiet session (the last of page 1) gets a message: it moves to the top by itself.
  const quiet = first[first.length - 1];
  const s = seeded.find((x) => x.id === quiet.id);
  const token = s.user_id ? userToken(SECRET, 'shop', s.user_id) : null;
  if (token && s.status !== 'closed') {
    await chat('shop', { id: s.id, token }, 'hello again');
    await waitRows(page, (r) => r[0].id === s.id && r[0].messages >= s.message_count + 1, 'the session moved up', POLL_WAIT);
  }
  // On page 2, a new session does not move the reader off their page.
  await page.getByRole('button', { name: 'Next page' }).click();
  await until(async () => (await page.locator('#page-no').textContent()) === '2', { message: 'page 2' });
  const page2 = await rows(page);
  const fresh = await newSession('shop', 'carol');
  await chat('shop', fresh, 'a new conversation');
  await page.waitForRequest((r) => r.url().includes('/v1/admin/sessions?') && r.url().includes('cursor='), { timeout: POLL_WAIT });
  assert.equal(await page.locator('#page-no').textContent(), '2');
  assert.ok((await rows(page)).length >= page2.length - 1);
  await page.getByRole('button', { name: 'First page' }).click();
  await waitRows(page, (r) => r[0].id === fresh.id && r[0].user === 'carol', 'the new session on top');
  await page.context().close();
});

test('a session live: streaming text by offsets (non-ASCII), canned replies, reply, release, close', async () => {
  const s = await newSession('shop', 'alice');
  await chat('shop', s, 'fancy first');
  const page = await consolePage();
  await page.evaluate(() => localStorage.removeItem('switchboard.console.canned'));
  await signIn(page, ada());
  await page.locator(`#sessions-body tr[data-id="${s.id}"] button`).click();
  await page.locator('#live-state[data-state="online"]').waitFor();
  const transcript = page.getByRole('log', { name: 'Transcript' });
  await transcript.locator('[data-role="assistant"][data-status="complete"]').waitFor();
  assert.equal(await transcript.locator('[data-role="assistant"] .content').first().textContent(), FANCY);

  // A slow answer streams in; the console shows it growing and ends with exactly the stored text.
  const turn = chat('shop', s, 'slow please');
  const streaming = transcript.locator('[data-role="assistant"][data-status="streaming"] .content');
  await until(async () => ((await streaming.textContent().catch(() => '')) || '').length > 10, { message: 'partial text' });
  await turn;
  const detail = await server.admin(`/sessions/${s.id}`, { tenant: 'shop' });
  const stored = detail.body.messages.filter((m) => m.role === 'assistant').map((m) => m.content);
  await until(async () => (await transcript.locator('[data-role="assistant"][data-status="complete"]').count()) === 2, { message: 'two answers' });
  assert.deepEqual(await transcript.locator('[data-role="assistant"] .content').allTextContents(), stored);

  // Reply is refused before a takeover (Send disabled); Take over adds the note; "/" offers canned replies.
  assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled());
  await page.getByRole('button', { name: 'Take over' }).click();
  await transcript.locator('[data-role="system"]', { hasText: 'Ada joined the conversation' }).waitFor();
  assert.equal(await page.locator('#detail-facts .badge').getAttribute('data-status'), 'human');
  const replyBox = page.getByLabel('Reply', { exact: true });
  await replyBox.fill('');
  await replyBox.pressSequentially('/hand');
  const listbox = page.getByRole('listbox', { name: 'Canned replies' });
  await listbox.waitFor();
  assert.equal(await listbox.getByRole('option').count(), 1);
  await replyBox.fill('');
  await replyBox.pressSequentially('/');
  assert.ok((await listbox.getByRole('option').count()) > 3);
  await replyBox.press('ArrowDown');
  assert.equal(await listbox.getByRole('option', { selected: true }).textContent(), (await listbox.getByRole('option').nth(1).textContent()));
  await replyBox.press('ArrowUp');
  await replyBox.press('Enter');
  assert.equal(await replyBox.inputValue(), "Hi, this is Ada. I'm taking over from the assistant: how can I help?");
  assert.ok(await listbox.isHidden());
  // A reply of one's own, saved, then found after "/".
  await replyBox.fill('Your parcel left our warehouse today.');
  await page.getByRole('button', { name: 'Save as canned reply' }).click();
  await replyBox.fill('');
  await replyBox.pressSequentially('/parcel');
  await listbox.getByRole('option', { name: /Your parcel left our warehouse today\./ }).waitFor();
  await replyBox.press('Enter');
  await replyBox.press('Enter'); // sends
  const agentMsg = transcript.locator('[data-role="agent"][data-author="Ada"]');
  await agentMsg.waitFor();
  assert.equal(await agentMsg.locator('.content').textContent(), 'Your parcel left our warehouse today.');
  const history = await endUser('shop', `/v1/sessions/${s.id}/messages?limit=50`, { method: 'GET', token: s.token });
  assert.ok(history.body.items.some((m) => m.role === 'agent' && m.author === 'Ada' && m.content === 'Your parcel left our warehouse today.'));

  // The user writes meanwhile: it shows live; no AI answer.
  const held = await chat('shop', s, 'thanks, where is it now?');
  assert.equal(held.handled_by, 'agent');
  await transcript.locator('[data-role="user"]', { hasText: 'where is it now' }).waitFor();

  // Release: the AI answers again; Close session (confirmed) closes it.
  await page.getByRole('button', { name: 'Release' }).click();
  await transcript.locator('[data-role="system"]', { hasText: 'Ada left the conversation' }).waitFor();
  await chat('shop', s, 'fancy again');
  await until(async () => (await transcript.locator('[data-role="assistant"][data-status="complete"]').count()) === 3, { message: 'third answer' });
  await page.getByRole('button', { name: 'Close session' }).click();
  const dialog = page.getByRole('dialog', { name: 'Close this session?' });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Close session' }).click();
  await page.locator('#detail-facts .badge[data-status="closed"]').waitFor();
  const refused = await endUser('shop', '/v1/chat', { token: s.token, body: { session_id: s.id, message: 'hello?', stream: false } });
  assert.equal(refused.body.error.code, 'session.closed');
  // Messages show role, author and status; every seq once, in order.
  const seqs = await transcript.locator('[data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b));
  assert.equal(await transcript.locator('[data-seq]:not([data-status])').count(), 0);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

/** The tool calls listed with the last assistant message of the open session. */
const toolCalls = (page) => page.getByRole('log', { name: 'Transcript' }).locator('[data-role="assistant"]').last()
  .getByRole('list', { name: 'Tool calls' }).locator('details.tool');
/** The text of a tool call's labelled part ("Arguments", "Result", "Shown to the visitor"). */
const toolPart = (call, name) => call.getByRole('figure', { name: new RegExp(`^${name}`) }).locator('pre');

test('tool calls: name and status live while they run, then arguments, result and error in full, as text', async () => {
  const s = await newSession('shop', 'alice');
  await chat('shop', s, 'hello first');
  const page = await consolePage();
  await signIn(page, ada());
  await page.getByRole('button', { name: `Open session ${s.id.slice(-8)}` }).click();
  await page.locator('#live-state[data-state="online"]').waitFor();

  // Live: the slow search shows as running, the call with bad arguments as error, before the answer ends.
  const turn = chat('shop', s, 'please use the tools');
  const calls = toolCalls(page);
  const search = calls.filter({ hasText: 'search_products' });
  const stock = calls.filter({ hasText: 'check_stock' });
  await search.locator('.tstatus[data-status="running"]').waitFor();
  assert.equal(await search.locator('summary').textContent(), 'Tool call search_products · running');
  await stock.locator('.tstatus[data-status="error"]').waitFor();
  await turn;
  assert.equal(merchant.calls.length, 1, 'the search reached the merchant; the call with bad arguments did not');

  // Done: the full payloads come with the detail (no reload of the page).
  await until(async () => /^Tool call search_products · done · \d+ ms$/.test(await search.locator('summary').textContent()),
    { timeout: 10_000, message: 'search done, with its duration' });
  await search.locator('summary').click();
  await toolPart(search, 'Arguments').waitFor();
  assert.deepEqual(JSON.parse(await toolPart(search, 'Arguments').textContent()), { query: 'running shoes' });
  assert.deepEqual(JSON.parse(await toolPart(search, 'Result').textContent()), FOUND);
  assert.deepEqual(JSON.parse(await toolPart(search, 'Shown to the visitor').textContent()), { type: 'text', text: 'Found one' });
  assert.match(await search.locator('.tool-facts').innerText(), /Call id\s+call_find\d+/);
  assert.equal(await page.locator('#transcript img').count(), 0, 'payloads are text, never HTML');

  await stock.locator('summary').click();
  assert.match(await stock.locator('.tool-error').textContent(), /^Error: \S/);
  assert.equal(await toolPart(stock, 'Arguments').textContent(), '{"sku": ');
  assert.match(await stock.getByRole('figure', { name: /^Arguments/ }).locator('figcaption').textContent(), /not JSON/);
  assert.match(await stock.locator('summary').textContent(), /^Tool call check_stock · error/);

  // A later message refreshes the detail: what the agent opened stays open.
  await chat('shop', s, 'thanks');
  await page.getByRole('log', { name: 'Transcript' }).locator('[data-role="assistant"]', { hasText: 'Answer to: thanks' }).waitFor();
  await new Promise((r) => setTimeout(r, 800));
  const earlier = page.getByRole('log', { name: 'Transcript' }).locator('details.tool', { hasText: 'search_products' });
  assert.equal(await earlier.evaluate((d) => d.open), true);
  assert.deepEqual(await seriousViolations(page, '#detail'), [], 'tool calls open');
  await screenshot(page, 'console-tool-calls');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

/** Opens session `id` in a console whose admin detail says `context` (the server's part may not be there yet). */
async function withContext(id, context) {
  const page = await consolePage();
  await page.route(`**/v1/admin/sessions/${id}`, async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    body.session.context = context;
    await route.fulfill({ response, json: body });
  });
  await signIn(page, ada());
  await page.getByRole('button', { name: `Open session ${id.slice(-8)}` }).click();
  await page.locator('#live-state[data-state="online"]').waitFor();
  return page;
}

test("the visitor's page: a web address is a link, anything else text; every field as escaped JSON; none, no section", async () => {
  const s = await newSession('shop', 'carol');
  await chat('shop', s, 'on a page');
  const region = (page) => page.getByRole('region', { name: "Visitor's page" });

  const web = { url: 'https://shop.example/p/blue?x=1', page: '/p/blue', title: 'Blue Ridge Runner', cart_id: 'c-1' };
  let page = await withContext(s.id, web);
  const link = region(page).getByRole('link', { name: web.url });
  assert.equal(await link.getAttribute('href'), web.url);
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await region(page).locator('.page-title').textContent(), 'Blue Ridge Runner');
  await region(page).getByText('Everything the page sent').click();
  assert.deepEqual(JSON.parse(await region(page).locator('pre').textContent()), web);
  await screenshot(page, 'console-visitor-page');
  await page.context().close();

  const hostile = { url: 'javascript:alert(1)', title: '<img src=x onerror=alert(1)> Shoes', note: '<b>bold</b>' };
  page = await withContext(s.id, hostile);
  await region(page).waitFor();
  assert.equal(await region(page).getByRole('link').count(), 0, 'no link for javascript:');
  assert.equal(await region(page).locator('.page-where').textContent(), 'javascript:alert(1)');
  assert.equal(await region(page).locator('.page-title').textContent(), hostile.title);
  assert.deepEqual(JSON.parse(await region(page).locator('pre').textContent()), hostile);
  assert.equal(await page.locator('#detail img, #detail b').count(), 0, 'context is text, never HTML');
  await page.context().close();

  const path = { page: '/shoes', title: 'Running shoes' };
  page = await withContext(s.id, path);
  assert.equal(await region(page).locator('.page-where').textContent(), '/shoes');
  assert.equal(await region(page).getByRole('link').count(), 0);
  await page.context().close();

  for (const none of [null, undefined]) {
    page = await withContext(s.id, none);
    await page.getByRole('log', { name: 'Transcript' }).locator('[data-role="assistant"]').first().waitFor();
    assert.equal(await region(page).count(), 0, `no section for ${none}`);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  }
});

test("the visitor's page follows the context the widget sends with its messages", async () => {
  const s = await newSession('shop', 'dave');
  const first = { page: '/shoes', title: 'Running shoes', cart_id: 'c-1' };
  const sent = await endUser('shop', '/v1/chat', { token: s.token, body: { session_id: s.id, message: 'hi from shoes', stream: false, context: first } });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const detail = await server.admin(`/sessions/${s.id}`, { tenant: 'shop' });
  assert.deepEqual(detail.body.session.context, first, 'the admin detail keeps the latest context (SPEC §12, §16)');
  const page = await consolePage();
  await signIn(page, ada());
  await page.getByRole('button', { name: `Open session ${s.id.slice(-8)}` }).click();
  const region = page.getByRole('region', { name: "Visitor's page" });
  await region.waitFor();
  assert.equal(await region.locator('.page-where').textContent(), '/shoes');
  assert.equal(await region.locator('.page-title').textContent(), 'Running shoes');
  await page.locator('#live-state[data-state="online"]').waitFor();

  // The visitor moves on and writes again: the section follows without a reload.
  const next = { url: 'https://shop.example/p/blue', title: 'Blue Ridge Runner' };
  await endUser('shop', '/v1/chat', { token: s.token, body: { session_id: s.id, message: 'and this one?', stream: false, context: next } });
  await region.getByRole('link', { name: next.url }).waitFor();
  assert.equal(await region.locator('.page-title').textContent(), 'Blue Ridge Runner');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('takeover from the console while the visitor chats in the widget on another origin', async () => {
  const visitor = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const widget = await visitor.newPage();
  await widget.goto(host.url('/'));
  await widget.getByRole('button', { name: 'Open chat' }).click();
  const box = widget.getByLabel('Message');
  await box.fill('hello there');
  await box.press('Enter');
  const answers = widget.locator('#switchboard-widget [data-role="assistant"][data-seq]:not([data-status="streaming"])');
  await answers.first().waitFor({ timeout: 20_000 });
  const sid = await until(async () => JSON.parse(await widget.evaluate(() => localStorage.getItem('switchboard:acme')) || 'null')?.s,
    { message: 'the widget stored its session' });

  const page = await consolePage();
  await signIn(page, ada('acme'));
  await page.locator(`#sessions-body tr[data-id="${sid}"] button`).click();
  const transcript = page.getByRole('log', { name: 'Transcript' });
  await transcript.locator('[data-role="user"]', { hasText: 'hello there' }).waitFor();
  await page.getByRole('button', { name: 'Take over' }).click();

  const banner = widget.locator('#switchboard-widget [data-banner="takeover"]');
  await banner.waitFor();
  assert.equal((await banner.textContent()).trim(), 'Ada joined');
  await page.getByLabel('Reply', { exact: true }).fill('Hello, I am Ada from Acme.');
  await page.getByRole('button', { name: 'Send' }).click();
  const agentMsg = widget.locator('#switchboard-widget [data-role="agent"][data-author="Ada"]');
  await agentMsg.waitFor();
  assert.match(await agentMsg.textContent(), /Hello, I am Ada from Acme\./);

  // The visitor answers: the agent sees it live, and no AI answer comes.
  await box.fill('Hi Ada!');
  await box.press('Enter');
  await transcript.locator('[data-role="user"]', { hasText: 'Hi Ada!' }).waitFor();
  assert.equal(await answers.count(), 1);

  // Release: the banner goes; the next visitor message gets an AI answer (in the widget and the console).
  await page.getByRole('button', { name: 'Release' }).click();
  await banner.waitFor({ state: 'detached' });
  await box.fill('back to the bot');
  await box.press('Enter');
  await until(async () => (await answers.count()) === 2, { timeout: 20_000, message: 'an AI answer after release' });
  assert.match(await answers.last().textContent(), /Answer to: back to the bot/);
  await transcript.locator('[data-role="assistant"]', { hasText: 'Answer to: back to the bot' }).waitFor();
  await screenshot(widget, 'console-widget-after-release');
  assert.deepEqual(page.problems, []);
  await page.context().close();
  await visitor.close();
});

test('the operator turns the kill switch on (confirmed) and off; the audit log records it and verifies', async () => {
  const page = await consolePage();
  await signIn(page, OPERATOR_TOKEN);
  await page.getByLabel('Tenant', { exact: true }).selectOption('kiosk');
  await page.getByRole('button', { name: 'Kill switch and audit' }).click();
  const ks = page.getByRole('switch', { name: 'Kill switch' });
  await until(async () => (await ks.getAttribute('aria-checked')) === 'false' && await ks.isEnabled(), { message: 'switch off' });

  // Cancelled: nothing changes.
  await ks.click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await ks.getAttribute('aria-checked'), 'false');
  assert.equal((await server.admin('/tenants/kiosk')).body.kill_switch, false);

  await page.getByLabel('Reason', { exact: true }).fill('abuse test');
  await ks.click();
  await page.getByRole('dialog', { name: 'Turn the kill switch on for kiosk?' }).getByRole('button', { name: 'Turn on' }).click();
  await until(async () => (await ks.getAttribute('aria-checked')) === 'true', { message: 'switch on' });
  assert.match(await page.locator('#ks-state').textContent(), /Reason: abuse test/);
  const refused = await endUser('kiosk', '/v1/sessions', { body: {} });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.code, 'tenant.disabled');
  const boot = await server.request('/v1/widget/bootstrap?tenant=kiosk', { origin: host.origin });
  assert.equal(boot.body.disabled, true);
  // A reload shows the state from GET /v1/admin/tenants/{id}.
  await page.reload();
  await page.getByRole('button', { name: 'Kill switch and audit' }).click();
  await until(async () => (await ks.getAttribute('aria-checked')) === 'true', { message: 'on after reload' });

  await ks.click(); // turning off needs no confirmation
  await until(async () => (await ks.getAttribute('aria-checked')) === 'false', { message: 'switch off again' });
  assert.equal((await endUser('kiosk', '/v1/sessions', { body: {} })).status, 201);

  const audit = page.locator('#audit-body tr');
  await until(async () => (await audit.first().textContent()).includes('tenant.kill_switch'), { message: 'audit entry' });
  assert.match(await audit.nth(1).textContent(), /tenant\.kill_switch.*enabled: true, reason: abuse test/);
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await until(async () => /The chain is intact \(\d+ entries\)\./.test(await page.locator('#audit-verdict').textContent()), { message: 'verdict' });
  await page.getByLabel('All tenants').check();
  await until(async () => (await audit.allTextContents()).some((t) => /\bshop\b/.test(t)), { message: 'other tenants listed' });
  await screenshot(page, 'console-kill-switch', { fullPage: true });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('usage per day is an SVG chart with a table fallback', async () => {
  const page = await consolePage();
  await signIn(page, ada());
  await page.getByRole('button', { name: 'Usage' }).click();
  const chart = page.getByRole('img', { name: /Usage per day/ });
  await chart.waitFor();
  assert.ok((await page.locator('#usage-chart svg rect.bar').count()) === 30);
  const today = new Date().toISOString().slice(0, 10);
  const row = page.locator('#usage-body tr', { hasText: today });
  await row.waitFor();
  const usage = await server.admin(`/usage?from=${today}&to=${today}`, { tenant: 'shop' });
  const tokens = usage.body.items[0].total_tokens;
  assert.equal((await row.locator('td').nth(3).textContent()).replace(/\D/g, ''), String(tokens));
  assert.equal(await page.locator('#usage-chart [style]').count(), 0);
  await screenshot(page, 'console-usage', { fullPage: true });
  await page.context().close();
});

test('accessibility: axe finds no serious or critical violation; screenshots at 1280 px, 800 px and dark', async () => {
  const page = await consolePage();
  assert.deepEqual(await seriousViolations(page), [], 'sign-in');
  await signIn(page, OPERATOR_TOKEN);
  await page.getByLabel('Tenant', { exact: true }).selectOption('shop');
  await waitRows(page, (r) => r.length === PAGE_SIZE, 'list');
  const withTalk = seeded.find((s) => s.message_count >= 4 && s.status === 'human');
  await page.locator(`#sessions-body tr[data-id="${withTalk.id}"] button`).click();
  await page.locator('#live-state[data-state="online"]').waitFor();
  await page.getByRole('log', { name: 'Transcript' }).locator('[data-role="assistant"]').first().waitFor();
  assert.deepEqual(await seriousViolations(page), [], 'sessions and one session');
  await page.mouse.move(0, 0);
  await screenshot(page, 'console');
  await page.getByLabel('Reply', { exact: true }).pressSequentially('/');
  await page.getByRole('listbox', { name: 'Canned replies' }).waitFor();
  assert.deepEqual(await seriousViolations(page), [], 'canned replies open');
  await page.getByLabel('Reply', { exact: true }).press('Escape');
  await page.getByRole('button', { name: 'Usage' }).click();
  await page.locator('#usage-chart svg').waitFor();
  assert.deepEqual(await seriousViolations(page), [], 'usage');
  await page.getByRole('button', { name: 'Kill switch and audit' }).click();
  await page.locator('#audit-body tr').first().waitFor();
  assert.deepEqual(await seriousViolations(page), [], 'kill switch and audit');
  await page.context().close();

  for (const [name, options] of [['console-800', { viewport: { width: 800, height: 900 } }], ['console-dark', { colorScheme: 'dark' }]]) {
    const p = await consolePage(options);
    await signIn(p, ada());
    await waitRows(p, (r) => r.length === PAGE_SIZE, 'list');
    assert.deepEqual(await seriousViolations(p), [], `${name} list`);
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= (options.viewport?.width || 1280), `no sideways scrolling at ${name}: ${width}`);
    await p.locator(`#sessions-body tr[data-id="${withTalk.id}"] button`).click();
    await p.getByRole('log', { name: 'Transcript' }).locator('[data-role="assistant"]').first().waitFor();
    assert.deepEqual(await seriousViolations(p), [], `${name} session`);
    await screenshot(p, name, { fullPage: true });
    assert.deepEqual(p.problems, []);
    await p.context().close();
  }
});

test('keyboard only: sign in, open a session from the table, take it over', async () => {
  const s = await newSession('shop', 'dora');
  await chat('shop', s, 'keyboard please');
  const page = await consolePage();
  await page.getByLabel('Token').focus();
  await page.keyboard.insertText(ada());
  await page.keyboard.press('Enter');
  const open = page.locator(`#sessions-body tr[data-id="${s.id}"] button`);
  await open.waitFor();
  await open.focus();
  await page.keyboard.press('Enter');
  await until(async () => page.evaluate(() => document.activeElement?.id === 'detail-title'), { message: 'focus on the session heading' });
  await page.locator('#live-state[data-state="online"]').waitFor();
  await page.getByRole('button', { name: 'Take over' }).focus();
  await page.keyboard.press('Enter');
  await until(async () => page.evaluate(() => document.activeElement?.id === 'reply'), { message: 'focus in Reply' });
  await page.keyboard.type('Typed with the keyboard.');
  await page.keyboard.press('Enter');
  await page.getByRole('log', { name: 'Transcript' }).locator('[data-role="agent"]', { hasText: 'Typed with the keyboard.' }).waitFor();
  await page.getByRole('button', { name: 'Back to the list' }).click();
  await until(async () => page.evaluate((id) => document.activeElement?.closest('tr')?.dataset.id === id, s.id), { message: 'focus back on the row' });
  await page.context().close();
});

test('the live view resumes after the server restarts: nothing lost, nothing twice', async () => {
  const s = await newSession('shop', 'erin');
  await chat('shop', s, 'before the restart');
  const page = await consolePage();
  await signIn(page, ada());
  await page.locator(`#sessions-body tr[data-id="${s.id}"] button`).click();
  await page.locator('#live-state[data-state="online"]').waitFor();
  const transcript = page.getByRole('log', { name: 'Transcript' });
  await transcript.locator('[data-role="assistant"][data-status="complete"]').waitFor();
  await server.restart();
  await chat('shop', s, 'after the restart');
  await transcript.locator('[data-role="assistant"]', { hasText: 'Answer to: after the restart' }).waitFor({ timeout: 30_000 });
  const seqs = await transcript.locator('[data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  await page.locator('#live-state[data-state="online"]').waitFor();
  await page.context().close();
});
