// The first page a newcomer opens: `/` on a server with its embedded defaults
// redirects to the demo shop, whose widget chats with the offline demo model
// under the page's strict policy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, screenshot } from './lib/index.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the root opens the demo shop, whose widget answers under a strict policy', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text()); });
  page.on('pageerror', (e) => violations.push(String(e)));

  const response = await page.goto(server.url + '/');
  assert.equal(new URL(page.url()).pathname, '/demo');
  assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
  await page.getByRole('heading', { name: 'Gear for the long way round' }).waitFor();

  await page.getByRole('button', { name: 'Open chat' }).click();
  await page.getByRole('dialog', { name: 'Chat' }).waitFor();
  const input = page.getByRole('textbox', { name: 'Message' });
  await input.fill('What is Switchboard?');
  await input.press('Enter');
  const answer = page.locator('[data-role="assistant"][data-status="complete"]').last();
  await answer.waitFor({ timeout: 20_000 });
  assert.match(await answer.innerText(), /Switchboard/);
  assert.equal(await page.locator('[data-role="user"]').count(), 1);
  await screenshot(page, 'demo');
  assert.deepEqual(violations, []);
  await context.close();
});

test('the demo shop: the offline model searches, adds to the cart and shows cards', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text()); });
  page.on('pageerror', (e) => violations.push(String(e)));
  await page.goto(server.url + '/demo');
  await page.getByRole('button', { name: 'Open chat' }).click();
  const input = page.getByRole('textbox', { name: 'Message' });
  const complete = page.locator('[data-role="assistant"][data-status="complete"]');

  await input.fill('show me running shoes');
  await input.press('Enter');
  await complete.nth(0).waitFor({ timeout: 20_000 });
  const cards = complete.nth(0).locator('.card');
  assert.equal(await cards.count(), 4);
  assert.match(await cards.first().innerText(), /Blue Ridge Runner/);
  // The inline SVG pictures load under the page's policy.
  const loaded = await cards.first().locator('img').evaluate((img) => img.complete && img.naturalWidth > 0);
  assert.ok(loaded, 'the product picture loaded');
  // The demo shop checks its cards live (its own verify endpoint, SPEC §16): the answer ends after the check, so the
  // cards are already said to be live.
  const search = complete.nth(0).locator('[data-call-id]');
  assert.equal(await search.getAttribute('data-tool-status'), 'verified');
  assert.deepEqual(await search.locator('.chk').evaluateAll((els) => els.map((e) => [e.dataset.check, e.textContent])), [['verified', 'Live price and stock']]);

  await input.fill('add the blue one to my cart');
  await input.press('Enter');
  await complete.nth(1).waitFor({ timeout: 20_000 });
  assert.match(await complete.nth(1).innerText(), /Added 1 × Blue Ridge Runner/);
  assert.match(await complete.nth(1).locator('.total').innerText(), /129/);
  // The cart's cards are products too, checked the same way.
  assert.deepEqual(await complete.nth(1).locator('[data-call-id]').evaluateAll((els) => els.map((e) => [e.dataset.toolStatus, e.querySelector('.chk')?.textContent])),
    [['verified', 'Live price and stock']]);
  await screenshot(page, 'demo-shop');
  assert.deepEqual(violations, []);
  await context.close();
});
