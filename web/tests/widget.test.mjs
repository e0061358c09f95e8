// The widget as a visitor meets it: open, type, watch the answer stream; safe rendering; hostile host pages
// (CSS that resets everything, a strict CSP); accessibility; screenshots; the size budget.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { widgetPage, strictHostCsp, screenshot, seriousViolations, until } from './lib/index.mjs';
import {
  startWorld, newPage, openChat, say, waitAnswers, waitState, transcript, recordStreaming, launcher, statusLine,
  assertMatchesServer, MARKDOWN,
} from './widget-support.mjs';

let world;
before(async () => { world = await startWorld(); });
after(async () => { await world?.close(); });

test('a visitor opens the chat, sends with Enter and watches the answer stream to complete', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  assert.equal(await launcher(page).getAttribute('aria-expanded'), 'true');
  assert.equal(await launcher(page).getAttribute('aria-label'), 'Close chat');
  const log = page.getByRole('log');
  assert.equal(await log.getAttribute('aria-live'), 'polite');
  const fontSize = await page.getByLabel('Message').evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  assert.ok(fontSize >= 16, `textarea font ${fontSize}px`);

  await say(page, 'hello there');
  await page.locator('#switchboard-widget [data-role="user"][data-seq]').filter({ hasText: 'hello there' }).waitFor();
  await recordStreaming(page);
  const shown = await waitAnswers(page, 1);
  const texts = await page.evaluate(() => window.__texts);
  assert.ok(texts.length > 1, `more than one text update while streaming: ${JSON.stringify(texts)}`);
  const answer = shown.find((m) => m.role === 'assistant');
  assert.equal(answer.status, 'complete');
  assert.equal(answer.text, 'You said: hello there. This answer streams to you word by word.');
  assert.equal(await statusLine(page).count(), 1);
  await waitState(page, 'online');
  await assertMatchesServer(assert, world, page);

  // Shift+Enter is a new line, not a send.
  const box = page.getByLabel('Message');
  await box.fill('line one');
  await box.press('Shift+Enter');
  await box.type('line two');
  assert.equal(await box.inputValue(), 'line one\nline two');
  assert.equal(await page.locator('#switchboard-widget [data-role="user"]').count(), 1);

  // Escape closes the panel and gives the focus back to the launcher.
  await box.press('Escape');
  await page.getByRole('dialog', { name: 'Chat' }).waitFor({ state: 'hidden' });
  assert.equal(await launcher(page).getAttribute('aria-label'), 'Open chat');
  assert.equal(await page.evaluate(() => document.getElementById('switchboard-widget').shadowRoot.activeElement?.getAttribute('aria-label')), 'Open chat');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('Markdown renders as elements, and HTML or javascript: links in an answer stay inert text', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'markdown please');
  await waitAnswers(page, 1);
  const answer = page.locator('#switchboard-widget [data-role="assistant"][data-seq]').last();
  assert.equal(await answer.locator('strong').first().textContent(), 'what we have');
  assert.equal(await answer.locator('ol > li').count(), 2);
  assert.equal(await answer.locator('ul > li').count(), 2);
  assert.equal(await answer.locator('em').textContent(), 'runner');
  assert.equal(await answer.locator('pre code').textContent(), 'let x = 1;');
  const a = answer.locator('a');
  assert.equal(await a.getAttribute('href'), 'https://shop.example/');
  assert.equal(await a.getAttribute('target'), '_blank');
  assert.equal(await a.getAttribute('rel'), 'noopener noreferrer');
  assert.ok(MARKDOWN.includes('SKU-42'));

  await say(page, 'unsafe please');
  await waitAnswers(page, 2);
  const unsafe = page.locator('#switchboard-widget [data-role="assistant"][data-seq]').last();
  const text = await unsafe.textContent();
  assert.ok(text.includes('<img src=x onerror="window.__xss=1">'), text);
  assert.ok(text.includes('<script>window.__xss=3</script>'), text);
  assert.equal(await page.locator('#switchboard-widget img').count(), 0);
  assert.equal(await page.locator('#switchboard-widget script').count(), 0);
  const hrefs = await unsafe.locator('a').evaluateAll((els) => els.map((e) => e.getAttribute('href')));
  assert.deepEqual(hrefs, ['https://example.com/a']);
  assert.ok(text.includes('click me'));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.context().close();
});

test('a host page that resets every style and stacks at the top z-index still gets a usable widget', async () => {
  const head = '<style>* { all: unset } div { z-index: 2147483647 } .cover { position: fixed; inset-inline: 0; bottom: 0; height: 40vh; ' +
    'z-index: 2147483647; background: rgba(255,0,0,.5) } .top { position: fixed; right: 0; bottom: 0; width: 300px; height: 300px; z-index: 2147483647; background: #0a0 }</style>';
  const body = '<main><h1>Hostile shop</h1></main><div class="cover"></div><div class="top"></div>';
  const url = world.host.page('/hostile', widgetPage({ server: world.server.url, tenant: 'acme', head, body }));
  const page = await newPage(world.browser);
  await page.goto(url);
  // An overlay added after the widget must not cover it either.
  await page.evaluate(() => { const d = document.createElement('div'); d.className = 'top'; document.body.append(d); });
  await page.getByRole('button', { name: 'Open chat' }).click();
  await page.getByRole('dialog', { name: 'Chat' }).waitFor();
  const size = await launcher(page).evaluate((e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; });
  assert.deepEqual(size, [56, 56]);
  await say(page, 'can you hear me');
  const shown = await waitAnswers(page, 1);
  assert.equal(shown.at(-1).status, 'complete');
  const panel = await page.getByRole('dialog', { name: 'Chat' }).evaluate((e) => { const r = e.getBoundingClientRect(); return r.width > 300 && r.height > 300; });
  assert.ok(panel, 'the panel keeps its size');
  await page.getByLabel('Message').click();
  await screenshot(page, 'widget-hostile-host', { animations: 'disabled' });
  await page.context().close();
});

test('a host page with a strict Content-Security-Policy (no unsafe-inline) works', async () => {
  const url = world.host.page('/strict', widgetPage({ server: world.server.url, tenant: 'acme' }), { csp: strictHostCsp(world.server.url) });
  const page = await newPage(world.browser);
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await openChat(page, url);
  await say(page, 'strict hello');
  const shown = await waitAnswers(page, 1);
  assert.equal(shown.at(-1).status, 'complete');
  // The stylesheet applied: the launcher is round and the panel has its background.
  assert.equal(await launcher(page).evaluate((e) => getComputedStyle(e).borderRadius), '50%');
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  await page.context().close();
});

test('the open widget has no serious or critical accessibility violations (axe-core)', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/'));
  await say(page, 'markdown for axe');
  await waitAnswers(page, 1);
  const violations = await seriousViolations(page);
  assert.deepEqual(violations, []);
  await page.context().close();
});

test('screenshots: light, dark and mobile (full screen below 480 px)', async () => {
  for (const [name, options] of [
    ['widget-light', { colorScheme: 'light', viewport: { width: 1280, height: 800 } }],
    ['widget-dark', { colorScheme: 'dark', viewport: { width: 1280, height: 800 } }],
    ['widget-mobile', { colorScheme: 'light', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }],
  ]) {
    const page = await newPage(world.browser, options);
    await openChat(page, world.host.url('/'));
    await say(page, 'markdown for the picture');
    await waitAnswers(page, 1);
    await waitState(page, 'online');
    if (name === 'widget-mobile') {
      const box = await page.getByRole('dialog', { name: 'Chat' }).boundingBox();
      assert.deepEqual([box.x, box.y, box.width, Math.round(box.height)], [0, 0, 390, 844]);
      await page.getByLabel('Message').tap();
      // The close control stays reachable on top of the full-screen panel.
      await launcher(page).tap();
      await page.getByRole('dialog', { name: 'Chat' }).waitFor({ state: 'hidden' });
      await launcher(page).tap();
    }
    if (name === 'widget-dark') {
      const bg = await page.getByRole('dialog', { name: 'Chat' }).evaluate((e) => getComputedStyle(e).backgroundColor);
      assert.equal(bg, 'rgb(22, 25, 31)');
    }
    await page.getByLabel('Message').fill('Do you ship abroad?');
    await screenshot(page, name, { animations: 'disabled' });
    await page.context().close();
  }
});

test('a right-to-left page gets a right-to-left widget (data-dir)', async () => {
  const url = world.host.page('/rtl', widgetPage({ server: world.server.url, tenant: 'acme', attrs: { dir: 'rtl', greeting: 'مرحبا! كيف يمكننا المساعدة؟' }, lang: 'ar', dir: 'rtl' }));
  const page = await newPage(world.browser);
  await openChat(page, url);
  const x = (await launcher(page).boundingBox()).x;
  assert.ok(x < 100, `launcher on the left in RTL (x=${x})`);
  assert.equal(await page.locator('#switchboard-widget .greeting').textContent(), 'مرحبا! كيف يمكننا المساعدة؟');
  assert.equal(await page.locator('#switchboard-widget .greeting').getAttribute('data-seq'), null);
  await screenshot(page, 'widget-rtl', { animations: 'disabled' });
  await page.context().close();
});

test('/widget.js is at most 15,000 bytes gzipped', async () => {
  const res = await fetch(`${world.server.url}/widget.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /javascript/);
  const body = Buffer.from(await res.arrayBuffer());
  const gz = gzipSync(body, { level: 9 }).length;
  assert.ok(gz <= 15_000, `/widget.js is ${gz} bytes gzipped`);
});

test('the JS API: open, close, send resolves with the stored message, on() events', async () => {
  const page = await newPage(world.browser);
  await page.goto(world.host.url('/'));
  await page.waitForFunction(() => window.Switchboard && typeof window.Switchboard.send === 'function');
  const events = await page.evaluate(() => new Promise((resolve) => {
    const seen = [];
    const sb = window.Switchboard;
    ['ready', 'open', 'close', 'message'].forEach((ev) => sb.on(ev, () => seen.push(ev)));
    sb.on('ready', () => {
      sb.open();
      sb.send('api hello').then((m) => {
        seen.push(`sent:${m.role}:${m.seq}:${m.content}`);
        sb.close();
        resolve(seen);
      });
    });
  }));
  assert.ok(events.includes('ready') && events.includes('open') && events.includes('close'), events.join());
  assert.ok(events.includes('sent:user:1:api hello'), events.join());
  await waitAnswers(page, 1);
  assert.ok((await page.evaluate(() => document.getElementById('switchboard-widget').shadowRoot.querySelectorAll('[data-seq]').length)) >= 2);
  const empty = await page.evaluate(() => window.Switchboard.send('   ').then(() => 'sent', (e) => e.code));
  assert.equal(empty, 'request.invalid');
  await until(async () => (await transcript(page)).length === 2);
  await page.context().close();
});
