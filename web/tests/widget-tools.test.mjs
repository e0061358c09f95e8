// Tools as a visitor meets them (SPEC §16): the model (a fake OpenAI streaming real tool-call chunks) calls
// the merchant's webhook, which verifies every call with the official Standard Webhooks library and answers
// with product cards; the widget shows them inside the answer, the text goes on after them, and a reload
// brings them back from the stored `tools`. The page's `setContext` reaches the webhook; a call signed with
// the wrong secret is refused by the merchant and the turn still ends in words. With the tenant's live product
// check (`verify_url`, its own secret) the cards say "Checking live price and stock…" while the text streams,
// then "Live price and stock" with the shop's new price, or "Price and stock not confirmed" when the check is
// too slow; a reload shows the same from the stored status.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, tenantToml, startHost, widgetPage, startFakeOpenAI, toolResults, startMerchant, newWebhookSecret,
  svgImage, launchBrowser, screenshot, seriousViolations, until,
} from './lib/index.mjs';
import { newPage, openChat, say, waitAnswers, waitState, storedState } from './widget-support.mjs';

const PRODUCTS = [
  { id: 'trail-runner', title: 'Trail Runner GTX', price: '89.90', currency: 'EUR', availability: 'in_stock',
    url: 'https://shop.acme.example/p/trail-runner', image: svgImage('#2f6f4f') },
  { id: 'city-sprint', title: 'City Sprint Lightweight Road Running Shoe', price: '119', currency: 'EUR', availability: 'low_stock',
    url: 'https://shop.acme.example/p/city-sprint', image: svgImage('#c2410c') },
];
const AFTER = 'I found two pairs for you. The **Trail Runner GTX** grips on wet trails; the **City Sprint** is the lighter ' +
  'one for roads. Shall I add one to your cart?';
const SORRY = 'Sorry, I could not reach the shop just now. Please try again in a moment.';
const CONTEXT = { page: '/shoes', title: 'Running shoes', cart_id: 'cart-42' };
const SEARCH = {
  name: 'search_products',
  description: "Search the shop's catalog by words",
  parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
  timeout_ms: 3000,
};
const INFO = { type: 'object', properties: {} };

let n = 0;
/** The fake model: asks for tools first, then answers in words from what the tools said. */
function reply(question, body) {
  const results = toolResults(body);
  if (question.includes('running shoes')) {
    if (!results.length) return { toolCalls: [{ id: `call_shoes${++n}`, name: 'search_products', arguments: { query: 'running shoes' } }] };
    return results[0].content?.error ? SORRY : { text: AFTER, delayMs: 60 };
  }
  if (question.includes('open')) {
    if (!results.length) {
      return { text: 'Let me check.', toolCalls: [
        { id: `call_hours${++n}`, name: 'opening_hours', arguments: {} },
        { id: `call_map${++n}`, name: 'store_map', arguments: '{}' },
      ] };
    }
    return ' We are open until six today.';
  }
  return `You said: ${question}.`;
}

// The shop's live check: the trail runner got cheaper and is nearly sold out; the other is unchanged.
const LIVE = [
  { id: 'trail-runner', price: '79.90', currency: 'EUR', availability: 'low_stock' },
  { id: 'city-sprint', price: '119', currency: 'EUR', availability: 'low_stock' },
];
const CHECKED = PRODUCTS.map((p) => ({ ...p, ...LIVE.find((l) => l.id === p.id) }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A check slower than the tenant's `verify_timeout_ms` (SLOW_TIMEOUT_MS), whose pending state lasts long enough to watch.
const SLOW_TIMEOUT_MS = 4000;

let world;
before(async () => {
  const merchant = await startMerchant({
    verifiers: {
      // Answers after a moment, so the pending line is seen first.
      live: async ({ ids }) => { await sleep(1000); return { items: LIVE.filter((l) => ids.includes(l.id)) }; },
      slow: async ({ ids }) => { await sleep(SLOW_TIMEOUT_MS + 5000); return { items: LIVE.filter((l) => ids.includes(l.id)) }; },
    },
    tools: {
      search_products: (call) => ({
        result: { found: PRODUCTS.length, products: PRODUCTS.map(({ id, title, price, availability }) => ({ id, title, price, availability })) },
        display: { type: 'products', items: PRODUCTS },
      }),
      opening_hours: () => ({ result: { today: '09:00-18:00' }, display: { type: 'text', text: 'Open today 9:00–18:00' } }),
      store_map: () => ({ result: { ok: true }, display: { type: 'link', url: 'https://shop.acme.example/stores', title: 'Our stores on a map' } }),
    },
  });
  const upstream = await startFakeOpenAI({ reply });
  const host = await startHost();
  const tool = (t, secretEnv) => ({ ...t, url: merchant.url, secret_env: secretEnv });
  const config = [
    // The merchant listens on 127.0.0.1, a loopback address tools may reach only when the operator says so.
    'tool_allow_private = ["127.0.0.1"]',
    tenantToml({
      id: 'acme', name: 'Acme Shop', origins: [host.origin], upstream: upstream.url,
      tools: [
        tool(SEARCH, 'ACME_TOOL_SECRET'),
        tool({ name: 'opening_hours', description: "Today's opening hours", parameters: INFO }, 'ACME_TOOL_SECRET'),
        tool({ name: 'store_map', description: 'A map of the stores', parameters: INFO }, 'ACME_TOOL_SECRET'),
      ],
    }),
    // Signs with a secret the merchant does not know.
    tenantToml({ id: 'wrongkey', name: 'Wrong Key', origins: [host.origin], upstream: upstream.url, tools: [tool(SEARCH, 'WRONG_TOOL_SECRET')] }),
    // The same shop with its live product check: one that answers in time, one slower than the tenant waits.
    tenantToml({ id: 'checked', name: 'Checked Shop', origins: [host.origin], upstream: upstream.url, tools: [tool(SEARCH, 'ACME_TOOL_SECRET')],
      extra: `[tenants.tooling]\nverify_url = "${merchant.verifyUrl('live')}"\nverify_secret_env = "ACME_VERIFY_SECRET"\nverify_timeout_ms = 3000` }),
    tenantToml({ id: 'slowcheck', name: 'Slow Shop', origins: [host.origin], upstream: upstream.url, tools: [tool(SEARCH, 'ACME_TOOL_SECRET')],
      extra: `[tenants.tooling]\nverify_url = "${merchant.verifyUrl('slow')}"\nverify_secret_env = "ACME_VERIFY_SECRET"\nverify_timeout_ms = ${SLOW_TIMEOUT_MS}` }),
  ].join('\n');
  const server = await startServer({
    config,
    env: { ACME_TOOL_SECRET: merchant.secret, ACME_VERIFY_SECRET: merchant.verifySecret, WRONG_TOOL_SECRET: newWebhookSecret() },
  });
  const browser = await launchBrowser();
  // The page context is queued before the widget's script runs, as docs/widget.md shows.
  const head = `<script>window.Switchboard = window.Switchboard || []; Switchboard.push(["setContext", ${JSON.stringify(CONTEXT)}]);</script>`;
  host.page('/shoes', () => widgetPage({ server: server.url, tenant: 'acme', head, body: '<main><h1>Running shoes</h1><p>Our range.</p></main>' }));
  host.page('/wrong', () => widgetPage({ server: server.url, tenant: 'wrongkey' }));
  host.page('/checked', () => widgetPage({ server: server.url, tenant: 'checked', body: '<main><h1>Running shoes</h1><p>Our range.</p></main>' }));
  host.page('/slowcheck', () => widgetPage({ server: server.url, tenant: 'slowcheck', body: '<main><h1>Running shoes</h1><p>Our range.</p></main>' }));
  world = {
    merchant, upstream, host, server, browser,
    async close() {
      await browser.close().catch(() => {});
      await server.close().catch(() => {});
      await host.close().catch(() => {});
      await upstream.close().catch(() => {});
      await merchant.close().catch(() => {});
    },
  };
});
after(async () => { await world?.close(); });

const answer = (page) => page.locator('#switchboard-widget [data-role="assistant"][data-seq]').last();

/**
 * Records in the page (`window.__seen`) each new state of the first answer as it streams: its status, its number of
 * cards, the length of its text outside the tool results, and the check line of its products (`data-check`, or null).
 */
function watchAnswer(page) {
  return page.evaluate(() => {
    const root = document.getElementById('switchboard-widget').shadowRoot;
    window.__seen = [];
    new MutationObserver(() => {
      const a = root.querySelector('[data-role="assistant"][data-seq]');
      if (!a) return;
      const body = a.querySelector('.body').cloneNode(true);
      body.querySelectorAll('[data-call-id]').forEach((t) => t.remove());
      const seen = { status: a.dataset.status, cards: a.querySelectorAll('.card').length, text: body.textContent.length, check: a.querySelector('.chk')?.dataset.check ?? null };
      const last = window.__seen[window.__seen.length - 1];
      if (!last || ['status', 'cards', 'text', 'check'].some((k) => last[k] !== seen[k])) window.__seen.push(seen);
      // Every picture element the answer ever had: a card updated in place keeps its picture.
      a.querySelectorAll('.card img').forEach((img) => { if (!img.__counted) { img.__counted = true; window.__pictures += 1; } });
    }).observe(root, { subtree: true, childList: true, characterData: true, attributes: true });
    window.__pictures = 0;
  });
}

/** The check lines of the answer's tool results, as `[data-check, text]`. */
const checkLines = (page) => answer(page).locator('.chk').evaluateAll((els) => els.map((e) => [e.dataset.check, e.textContent]));

/** The answer's visible parts in document order: text (outside the tool results) and tool results. */
function parts(page) {
  return answer(page).evaluate((a) => {
    const out = [];
    const walk = (node) => {
      for (const c of node.childNodes) {
        if (c.nodeType === 1 && c.matches('[data-call-id]')) out.push({ tool: c.dataset.callId, status: c.dataset.toolStatus, cards: c.querySelectorAll('.card').length });
        else if (c.nodeType === 3) { if (c.textContent.trim()) out.push({ text: c.textContent }); }
        else walk(c);
      }
    };
    walk(a);
    // Join neighbouring texts.
    return out.reduce((acc, p) => {
      const last = acc[acc.length - 1];
      if (p.text !== undefined && last?.text !== undefined) last.text += p.text;
      else acc.push(p);
      return acc;
    }, []);
  });
}

/** The cards as the visitor reads them. */
function cards(page) {
  return answer(page).locator('.card').evaluateAll((els) => els.map((c) => {
    const img = c.querySelector('img');
    return {
      id: c.dataset.productId,
      title: c.querySelector('a')?.textContent,
      href: c.querySelector('a')?.getAttribute('href'),
      price: c.querySelector('.price')?.textContent,
      availability: c.querySelector('.avail')?.textContent,
      image: img ? { data: img.getAttribute('src').startsWith('data:image/svg+xml,'), loaded: img.complete && img.naturalWidth > 0 } : null,
    };
  }));
}

const EXPECTED_CARDS = [
  { id: 'trail-runner', title: 'Trail Runner GTX', href: 'https://shop.acme.example/p/trail-runner', price: '€89.90', availability: 'In stock', image: { data: true, loaded: true } },
  { id: 'city-sprint', title: 'City Sprint Lightweight Road Running Shoe', href: 'https://shop.acme.example/p/city-sprint', price: '€119.00', availability: 'Low stock', image: { data: true, loaded: true } },
];

test('"show me running shoes": the merchant\'s product cards show inside the answer, the text goes on after them, and a reload keeps them', async () => {
  const { merchant, upstream } = world;
  const page = await newPage(world.browser, { colorScheme: 'light', viewport: { width: 1280, height: 800 } });
  await openChat(page, world.host.url('/shoes'));
  // What the answer shows while it streams: the cards first, then text growing after them.
  await watchAnswer(page);
  await page.getByRole('textbox', { name: 'Message' }).fill('show me running shoes');
  await page.getByRole('button', { name: 'Send' }).click();
  await waitAnswers(page, 1);

  // The answer: the cards, then the text of the second round.
  const shown = await parts(page);
  assert.equal(shown.length, 2, JSON.stringify(shown));
  assert.deepEqual(shown[0], { tool: shown[0].tool, status: 'done', cards: 2 });
  assert.match(shown[0].tool, /^call_shoes\d+$/);
  assert.match(shown[1].text, /^I found two pairs for you\. The Trail Runner GTX grips on wet trails;.*Shall I add one to your cart\?$/);
  assert.equal(await answer(page).getAttribute('data-status'), 'complete');
  await until(async () => (await cards(page)).every((c) => c.image?.loaded), { message: 'the product images loaded' });
  assert.deepEqual(await cards(page), EXPECTED_CARDS);
  assert.deepEqual(await checkLines(page), [], 'no live check (no verify_url): no check line');
  const seen = await page.evaluate(() => window.__seen);
  const firstCards = seen.findIndex((s) => s.cards === 2);
  assert.ok(firstCards >= 0, JSON.stringify(seen));
  assert.equal(seen[firstCards].status, 'streaming', `the cards came while the answer streamed: ${JSON.stringify(seen)}`);
  assert.ok(seen.slice(firstCards + 1).filter((s) => s.status === 'streaming' && s.cards === 2 && s.text > seen[firstCards].text).length > 1,
    `the text kept streaming after the cards: ${JSON.stringify(seen)}`);

  // The merchant got one verified call, with the page's context, for this visitor's session.
  assert.equal(merchant.calls.length, 1);
  const call = merchant.calls[0];
  const sid = (await storedState(page)).s;
  assert.equal(call.type, 'tool.call');
  assert.equal(call.tenant_id, 'acme');
  assert.equal(call.session_id, sid);
  assert.equal(call.tool, 'search_products');
  assert.equal(call.call_id, shown[0].tool);
  assert.deepEqual(call.arguments, { query: 'running shoes' });
  assert.deepEqual(call.context, CONTEXT);
  assert.equal(call.subject.kind, 'visitor');
  assert.match(call.headers['webhook-id'], /\S/);
  assert.match(call.headers['webhook-signature'], /^v1,/);
  assert.deepEqual(merchant.rejected, []);
  // The model's second request of the turn carried the result (not the display).
  const second = upstream.calls.at(-1).body;
  assert.deepEqual(toolResults(second), [{ call_id: call.call_id, content: { found: 2, products: PRODUCTS.map(({ id, title, price, availability }) => ({ id, title, price, availability })) } }]);
  const asked = second.messages.find((m) => m.role === 'assistant' && m.tool_calls);
  assert.equal(asked.tool_calls[0].id, call.call_id);
  assert.deepEqual(JSON.parse(asked.tool_calls[0].function.arguments), { query: 'running shoes' });

  // The server stored what the visitor may see, and no more.
  const history = await world.server.request(`/v1/sessions/${sid}/messages?limit=50`, { token: (await storedState(page)).t, origin: world.host.origin });
  assert.equal(history.status, 200, JSON.stringify(history.body));
  const stored = history.body.items.find((m) => m.role === 'assistant');
  assert.deepEqual(stored.tools, [{ call_id: call.call_id, name: 'search_products', status: 'done', display: { type: 'products', items: PRODUCTS } }]);

  // Accessible with the cards shown; then the picture for the docs.
  await waitState(page, 'online');
  assert.deepEqual(await seriousViolations(page), []);
  const cardBoxes = await answer(page).locator('.card').evaluateAll((els) => els.map((c) => {
    const r = c.getBoundingClientRect(), m = c.closest('.msg').getBoundingClientRect();
    return { inside: r.left >= m.left && r.right <= m.right, overflows: c.scrollWidth > c.clientWidth };
  }));
  assert.deepEqual(cardBoxes, [{ inside: true, overflows: false }, { inside: true, overflows: false }]);
  await page.getByLabel('Message').fill('Do they come in blue?');
  await screenshot(page, 'widget-tools', { animations: 'disabled' });

  // After a reload the cards come back from the stored `tools`, in the same place.
  await page.reload();
  await page.getByRole('button', { name: 'Open chat' }).click();
  await until(async () => (await answer(page).locator('.card').count()) === 2, { message: 'the cards after the reload' });
  await waitAnswers(page, 1);
  assert.deepEqual(await parts(page), shown);
  await until(async () => (await cards(page)).every((c) => c.image?.loaded), { message: 'the product images loaded' });
  assert.deepEqual(await cards(page), EXPECTED_CARDS);
  assert.equal(merchant.calls.length, 1, 'a reload calls no tool');
  await page.emulateMedia({ colorScheme: 'dark' });
  await screenshot(page, 'widget-tools-dark', { animations: 'disabled' });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('text and link displays, two calls in one response: shown where the text stopped, in the order called', async () => {
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/shoes'));
  await say(page, 'are you open today?');
  await waitAnswers(page, 1);
  const shown = await parts(page);
  assert.equal(shown.length, 4, JSON.stringify(shown));
  assert.deepEqual(shown[0], { text: 'Let me check.' });
  assert.match(shown[1].tool, /^call_hours\d+$/);
  assert.match(shown[2].tool, /^call_map\d+$/);
  assert.deepEqual([shown[1].status, shown[2].status], ['done', 'done']);
  assert.deepEqual(shown[3], { text: ' We are open until six today.' });
  const hours = answer(page).locator(`[data-call-id="${shown[1].tool}"]`);
  assert.equal(await hours.textContent(), 'Open today 9:00–18:00');
  const map = answer(page).locator(`[data-call-id="${shown[2].tool}"] a`);
  assert.equal(await map.textContent(), 'Our stores on a map');
  assert.equal(await map.getAttribute('href'), 'https://shop.acme.example/stores');
  assert.equal(await map.getAttribute('rel'), 'noopener noreferrer');
  await screenshot(page, 'widget-tools-text', { animations: 'disabled' });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a call signed with a secret the merchant does not know is refused (401): the tool says error and the turn ends in words', async () => {
  const { merchant, upstream } = world;
  const rejectedBefore = merchant.rejected.length;
  const callsBefore = merchant.calls.length;
  const page = await newPage(world.browser);
  await openChat(page, world.host.url('/wrong'));
  await say(page, 'show me running shoes');
  const [, last] = await waitAnswers(page, 1);
  assert.equal(last.status, 'complete');
  assert.equal(last.text, SORRY);
  const tool = answer(page).locator('[data-call-id]');
  assert.equal(await tool.getAttribute('data-tool-status'), 'error');
  assert.equal(await answer(page).locator('.card').count(), 0);
  // The merchant refused it: the official library found no matching signature.
  assert.equal(merchant.calls.length, callsBefore);
  assert.equal(merchant.rejected.length, rejectedBefore + 1);
  assert.match(merchant.rejected.at(-1).error, /signature/i);
  // The model read the failure as an error result.
  const results = toolResults(upstream.calls.at(-1).body);
  assert.equal(results.length, 1);
  assert.match(String(results[0].content.error), /401/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

/** The stored assistant message of the page's session, from the REST history. */
async function storedAnswer(page) {
  const { s: sid, t: token } = await storedState(page, await page.evaluate(() => document.querySelector('script[data-tenant]').dataset.tenant));
  const history = await world.server.request(`/v1/sessions/${sid}/messages?limit=50`, { token, origin: world.host.origin });
  assert.equal(history.status, 200, JSON.stringify(history.body));
  return history.body.items.find((m) => m.role === 'assistant');
}

test('with the shop\'s live check: "Checking live price and stock…", then the new price and "Live price and stock"; a reload keeps them', async () => {
  const { merchant } = world;
  const checksBefore = merchant.checks.length;
  const page = await newPage(world.browser, { colorScheme: 'light', viewport: { width: 1280, height: 800 } });
  await openChat(page, world.host.url('/checked'));
  await watchAnswer(page);
  await say(page, 'show me running shoes');
  const tool = answer(page).locator('[data-call-id]');
  await until(async () => (await checkLines(page)).length === 1, { message: 'the check line' });
  assert.deepEqual(await checkLines(page), [['pending', 'Checking live price and stock…']]);
  assert.equal(await tool.getAttribute('data-tool-status'), 'shown');
  await waitAnswers(page, 1);

  // The shop's live price and stock, in the same cards, said to be live (words and a check mark, not colour alone).
  const shown = await parts(page);
  assert.equal(shown.length, 2, JSON.stringify(shown));
  assert.deepEqual(shown[0], { tool: shown[0].tool, status: 'verified', cards: 2 });
  assert.match(shown[1].text, /^I found two pairs for you\./);
  assert.deepEqual(await checkLines(page), [['verified', 'Live price and stock']]);
  assert.equal(await answer(page).locator('.chk svg[aria-hidden="true"]').count(), 1);
  const expected = [
    { ...EXPECTED_CARDS[0], price: '€79.90', availability: 'Low stock' },
    EXPECTED_CARDS[1],
  ];
  await until(async () => (await cards(page)).every((c) => c.image?.loaded), { message: 'the product images loaded' });
  assert.deepEqual(await cards(page), expected);
  // The line was "checking" first and the check came while the answer streamed (SPEC §16: before stream_end);
  // the pictures were made once, not again when the price changed.
  const seen = await page.evaluate(() => window.__seen);
  const pending = seen.findIndex((x) => x.check === 'pending');
  const verified = seen.findIndex((x) => x.check === 'verified');
  assert.ok(pending >= 0 && verified > pending, JSON.stringify(seen));
  assert.equal(seen[verified].status, 'streaming', JSON.stringify(seen));
  assert.ok(seen.slice(verified).every((x) => x.check === 'verified'), JSON.stringify(seen));
  assert.equal(await page.evaluate(() => window.__pictures), 2);
  // The merchant's check endpoint got one signed `products.verify` for the ids shown, verified with its own secret.
  assert.equal(merchant.checks.length, checksBefore + 1);
  const check = merchant.checks.at(-1);
  assert.equal(check.verifier, 'live');
  assert.equal(check.type, 'products.verify');
  assert.deepEqual(check.ids, ['trail-runner', 'city-sprint']);
  assert.match(check.headers['webhook-signature'], /^v1,/);
  assert.equal(merchant.rejected.filter((r) => r.verifier).length, 0);
  // Stored: the last status and the display with the live fields merged in.
  const stored = await storedAnswer(page);
  assert.deepEqual(stored.tools, [{ call_id: shown[0].tool, name: 'search_products', status: 'verified', display: { type: 'products', items: CHECKED } }]);

  await waitState(page, 'online');
  assert.deepEqual(await seriousViolations(page), []);
  await screenshot(page, 'widget-tools-verified', { animations: 'disabled' });

  // After a reload the stored status alone gives the same cards and line; nothing is checked again.
  await page.reload();
  await page.getByRole('button', { name: 'Open chat' }).click();
  await until(async () => (await answer(page).locator('.card').count()) === 2, { message: 'the cards after the reload' });
  await waitAnswers(page, 1);
  assert.deepEqual(await parts(page), shown);
  assert.deepEqual(await checkLines(page), [['verified', 'Live price and stock']]);
  await until(async () => (await cards(page)).every((c) => c.image?.loaded), { message: 'the product images loaded' });
  assert.deepEqual(await cards(page), expected);
  assert.equal(merchant.checks.length, checksBefore + 1, 'a reload checks nothing');
  await page.emulateMedia({ colorScheme: 'dark' });
  assert.deepEqual(await seriousViolations(page), []);
  await screenshot(page, 'widget-tools-verified-dark', { animations: 'disabled' });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a live check slower than verify_timeout_ms: the text streams meanwhile, then "Price and stock not confirmed"; a reload keeps it', async () => {
  const { merchant } = world;
  const checksBefore = merchant.checks.length;
  const page = await newPage(world.browser, { colorScheme: 'light', viewport: { width: 1280, height: 800 } });
  await openChat(page, world.host.url('/slowcheck'));
  await watchAnswer(page);
  await say(page, 'show me running shoes');
  // The answer's text streams while the check is pending: it is never held back by the check.
  await until(async () => (await page.evaluate(() => window.__seen)).some((x) => x.check === 'pending' && x.text > 40),
    { message: 'text streamed while the check was pending' });
  assert.deepEqual(await checkLines(page), [['pending', 'Checking live price and stock…']]);
  await screenshot(page, 'widget-tools-checking', { animations: 'disabled' });
  await waitAnswers(page, 1, 30_000);

  const shown = await parts(page);
  assert.equal(shown.length, 2, JSON.stringify(shown));
  assert.deepEqual(shown[0], { tool: shown[0].tool, status: 'unverified', cards: 2 });
  assert.deepEqual(await checkLines(page), [['unverified', 'Price and stock not confirmed']]);
  assert.equal(await answer(page).locator('.chk svg[aria-hidden="true"]').count(), 1);
  await until(async () => (await cards(page)).every((c) => c.image?.loaded), { message: 'the product images loaded' });
  assert.deepEqual(await cards(page), EXPECTED_CARDS, 'the prices shown are the ones the tool gave');
  const seen = await page.evaluate(() => window.__seen);
  const full = shown[1].text.length;
  const pendingFull = seen.findIndex((x) => x.check === 'pending' && x.text === full);
  const unverified = seen.findIndex((x) => x.check === 'unverified');
  assert.ok(pendingFull >= 0 && unverified > pendingFull, `the whole text streamed before the check gave up: ${JSON.stringify(seen)}`);
  assert.equal(seen[pendingFull].status, 'streaming', 'the answer ends only after its check');
  assert.equal(merchant.checks.length, checksBefore + 1);
  assert.equal(merchant.checks.at(-1).verifier, 'slow');
  const stored = await storedAnswer(page);
  assert.deepEqual(stored.tools, [{ call_id: shown[0].tool, name: 'search_products', status: 'unverified', display: { type: 'products', items: PRODUCTS } }]);
  await waitState(page, 'online');
  await screenshot(page, 'widget-tools-unverified', { animations: 'disabled' });

  await page.reload();
  await page.getByRole('button', { name: 'Open chat' }).click();
  await until(async () => (await answer(page).locator('.card').count()) === 2, { message: 'the cards after the reload' });
  await waitAnswers(page, 1);
  assert.deepEqual(await parts(page), shown);
  assert.deepEqual(await checkLines(page), [['unverified', 'Price and stock not confirmed']]);
  await page.emulateMedia({ colorScheme: 'dark' });
  assert.deepEqual(await seriousViolations(page), []);
  await screenshot(page, 'widget-tools-unverified-dark', { animations: 'disabled' });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
