// The whole demo flow, as a newcomer and an agent live it: on /demo a visitor asks for running shoes
// (product cards), adds the blue one, views the cart (quantity and total) and asks for a person (the widget
// shows the handoff); in the agent console (a second browser) the operator finds the session with the
// "waiting" filter, reads the tool calls and the visitor's page, takes over and writes, and the visitor's
// widget shows it. Everything is clicked by its accessible name; screenshots at each step.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, screenshot, seriousViolations, until, OPERATOR_TOKEN } from './lib/index.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.close().catch(() => {});
});

/** A page of its own browser context, collecting page errors and policy refusals. */
async function newPage(options) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push(m.text()); });
  return page;
}

test('demo: cards, cart, handoff; the agent finds it waiting, reads the tool calls, takes over and is heard', async () => {
  // The visitor on the demo shop.
  const shop = await newPage();
  await shop.goto(`${server.url}/demo`);
  await shop.getByRole('button', { name: 'Open chat' }).click();
  await shop.getByRole('dialog', { name: 'Chat' }).waitFor();
  // The shop tells the widget which page the visitor is on (sent with each later message).
  await until(() => shop.evaluate(() => typeof window.Switchboard?.setContext === 'function'), { message: 'the widget API' });
  const pageContext = await shop.evaluate(() => {
    const ctx = { page: location.pathname, url: location.href, title: document.title, cart_id: 'demo-cart-1' };
    window.Switchboard.setContext(ctx);
    return ctx;
  });
  const input = shop.getByRole('textbox', { name: 'Message' });
  const send = shop.getByRole('button', { name: 'Send' });
  const answers = shop.locator('#switchboard-widget [data-role="assistant"][data-status="complete"]');
  const ask = async (text, n) => {
    await input.fill(text);
    await send.click();
    await answers.nth(n).waitFor({ timeout: 20_000 });
    return answers.nth(n);
  };

  const found = await ask('show me running shoes', 0);
  assert.equal(await found.locator('.card').count(), 4);
  assert.match(await found.locator('.card').first().innerText(), /Blue Ridge Runner/);
  await screenshot(shop, 'flow-1-cards', { animations: 'disabled' });

  const added = await ask('add the blue one to my cart', 1);
  assert.match(await added.innerText(), /Added 1 × Blue Ridge Runner/);

  const cart = await ask("what's in my cart", 2);
  const line = cart.locator('.card', { hasText: 'Blue Ridge Runner' });
  assert.match(await line.locator('.price').innerText(), /129.*× 1/);
  assert.match(await cart.locator('.total').innerText(), /^Total: .*129/);
  await screenshot(shop, 'flow-2-cart', { animations: 'disabled' });

  await input.fill("I'd like to talk to a person");
  await send.click();
  const note = shop.locator('#switchboard-widget .note', { hasText: 'We have asked a person to join' });
  await note.waitFor({ timeout: 20_000 });
  await shop.locator('#switchboard-widget [data-role="system"]', { hasText: 'Handoff requested' }).waitFor();
  await screenshot(shop, 'flow-3-handoff', { animations: 'disabled' });
  const sid = await until(async () => JSON.parse(await shop.evaluate(() => localStorage.getItem('switchboard:demo')) || 'null')?.s,
    { message: 'the widget stored its session' });

  // The agent console: the operator signs in and picks the demo tenant.
  const desk = await newPage({ timezoneId: 'UTC' });
  await desk.goto(`${server.url}/admin`);
  await desk.getByLabel('Token').fill(OPERATOR_TOKEN);
  await desk.getByRole('button', { name: 'Sign in' }).click();
  await desk.getByLabel('Tenant', { exact: true }).selectOption('demo');
  await desk.getByLabel('Status', { exact: true }).selectOption('waiting');
  const open = desk.getByRole('button', { name: `Open session ${sid.slice(-8)}` });
  await open.waitFor();
  const statuses = await desk.locator('#sessions-body .badge').allTextContents();
  assert.ok(statuses.length >= 1 && statuses.every((s) => s === 'waiting'), JSON.stringify(statuses));
  await open.click();

  // The transcript shows each answer's tool calls: name and status at once, payloads on demand.
  const transcript = desk.getByRole('log', { name: 'Transcript' });
  const calls = transcript.getByRole('list', { name: 'Tool calls' }).locator('details.tool');
  await until(async () => (await calls.count()) === 4, { message: 'four tool calls' });
  const summaries = await calls.locator('summary').allTextContents();
  // The calls whose display holds products end `verified`: the demo shop checks its own cards live (SPEC §16).
  assert.deepEqual(summaries.map((s) => s.replace(/ · \d+ ms$/, '')), [
    'Tool call search_products · verified',
    'Tool call add_to_cart · verified',
    'Tool call view_cart · verified',
    'Tool call handoff_to_human · done',
  ]);
  const search = calls.filter({ hasText: 'search_products' });
  await search.locator('summary').click();
  const part = (call, name) => call.getByRole('figure', { name: new RegExp(`^${name}`) }).locator('pre');
  assert.deepEqual(JSON.parse(await part(search, 'Arguments').textContent()), { query: 'running shoes' });
  assert.ok(JSON.stringify(JSON.parse(await part(search, 'Result').textContent())).includes('Blue Ridge Runner'));
  assert.equal(JSON.parse(await part(search, 'Shown to the visitor').textContent()).type, 'products');
  await search.locator('summary').scrollIntoViewIfNeeded();
  await screenshot(desk, 'flow-4-console-search', { fullPage: true });
  const add = calls.filter({ hasText: 'add_to_cart' });
  await add.locator('summary').click();
  assert.equal(JSON.parse(await part(add, 'Arguments').textContent()).quantity, 1);
  await screenshot(desk, 'flow-5-console-add', { fullPage: true });

  // The visitor's page: the context the shop set, kept on the session (SPEC §16); its address is a link.
  const detail = await server.admin(`/sessions/${sid}`, { tenant: 'demo' });
  assert.deepEqual(detail.body.session.context, pageContext);
  const visitorPage = desk.getByRole('region', { name: "Visitor's page" });
  const link = visitorPage.getByRole('link', { name: pageContext.url });
  assert.equal(await link.getAttribute('href'), pageContext.url);
  assert.equal(await visitorPage.locator('.page-title').textContent(), pageContext.title);

  assert.deepEqual(await seriousViolations(desk, '#detail'), [], 'the session with tool calls open');

  // Take over: the visitor's widget says so and shows the agent's message.
  await desk.getByRole('button', { name: 'Take over' }).click();
  await transcript.locator('[data-role="system"]', { hasText: 'Operator joined the conversation' }).waitFor();
  const banner = shop.locator('#switchboard-widget [data-banner="takeover"]');
  await banner.waitFor();
  assert.equal((await banner.textContent()).trim(), 'Operator joined');
  await desk.getByLabel('Reply', { exact: true }).fill('Hi, I am here. The Blue Ridge Runner runs half a size small.');
  await desk.getByRole('button', { name: 'Send' }).click();
  const said = shop.locator('#switchboard-widget [data-role="agent"][data-author="Operator"]');
  await said.waitFor();
  assert.match(await said.textContent(), /runs half a size small/);
  const reply = transcript.locator('[data-role="agent"]', { hasText: 'runs half a size small' });
  await reply.waitFor();
  await screenshot(shop, 'flow-6-widget-agent', { animations: 'disabled' });
  await reply.scrollIntoViewIfNeeded();
  await screenshot(desk, 'flow-7-console-human', { fullPage: true });
  await desk.emulateMedia({ colorScheme: 'dark' });
  await desk.setViewportSize({ width: 800, height: 900 });
  await transcript.locator('details.tool', { hasText: 'handoff_to_human' }).locator('summary').click();
  assert.equal(await desk.evaluate(() => document.documentElement.scrollWidth), 800, 'no sideways scrolling at 800 px');
  await screenshot(desk, 'flow-8-console-dark-800', { fullPage: true });

  assert.deepEqual(shop.problems, []);
  assert.deepEqual(desk.problems, []);
  await shop.context().close();
  await desk.context().close();
});
