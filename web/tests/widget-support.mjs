// What the widget's browser tests share: a server with the tenants they need, a fake model whose answers
// the tests pick by the question, a host site on a second origin, and helpers that speak to the widget the
// way people (and screen readers) do: by role and accessible name.
import {
  startServer, tenantToml, startHost, widgetPage, startFakeOpenAI, launchBrowser, until,
} from './lib/index.mjs';

export const SECRET = 'widget-browser-tests-hs256-secret-0123456789';
export const COUNT = Array.from({ length: 40 }, (_, i) => `word${i + 1}`).join(' ');
export const UNSAFE = 'Look: <img src=x onerror="window.__xss=1"> and [click me](javascript:window.__xss=2) ' +
  'and <script>window.__xss=3</script> and [a safe link](https://example.com/a) done.';
export const MARKDOWN = 'Here is **what we have**:\n\n1. Trail *runner* shoes\n2. `SKU-42` bottle\n\n' +
  '- fast\n- light\n\n```\nlet x = 1;\n```\nMore at [our shop](https://shop.example/).';

/** The fake model: "slow …" counts to forty slowly; "unsafe …", "markdown …" answer what they say. */
export function reply(question) {
  if (question.includes('slow')) return { text: COUNT, delayMs: 150 };
  if (question.includes('unsafe')) return UNSAFE;
  if (question.includes('markdown')) return { text: MARKDOWN, delayMs: 20 };
  return { text: `You said: ${question}. This answer streams to you word by word.`, delayMs: 40 };
}

/** A server with `acme` (allows the host, user JWTs, the fake model), `elsewhere` (allows another site) and `frozen` (kill switch on). */
export async function startWorld() {
  const upstream = await startFakeOpenAI({ reply });
  const host = await startHost();
  const config = [
    tenantToml({ id: 'acme', name: 'Acme Shop', origins: [host.origin], jwtSecretEnv: 'ACME_JWT_SECRET', upstream: upstream.url }),
    tenantToml({ id: 'elsewhere', origins: ['https://other.example'] }),
    tenantToml({ id: 'frozen', origins: [host.origin], extra: 'kill_switch = true' }),
  ].join('\n');
  const server = await startServer({ config, env: { ACME_JWT_SECRET: SECRET } });
  const browser = await launchBrowser();
  host.page('/', () => widgetPage({ server: server.url, tenant: 'acme' }));
  return {
    upstream, host, server, browser,
    async close() {
      await browser.close().catch(() => {});
      await server.close().catch(() => {});
      await host.close().catch(() => {});
      await upstream.close().catch(() => {});
    },
  };
}

/** A page of its own browser context (own localStorage), with page errors collected. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

export const launcher = (page) => page.getByRole('button', { name: /^(Open|Close) chat$/ });
export const statusLine = (page) => page.locator('#switchboard-widget [role="status"]');
export const stored = (page, role) => page.locator(`#switchboard-widget [data-seq]${role ? `[data-role="${role}"]` : ''}`);

/** Loads `url` and opens the chat with its launcher. */
export async function openChat(page, url) {
  await page.goto(url);
  await page.getByRole('button', { name: 'Open chat' }).click();
  await page.getByRole('dialog', { name: 'Chat' }).waitFor();
}

/** Types `text` into "Message" and presses Enter. */
export async function say(page, text) {
  const box = page.getByLabel('Message');
  await box.fill(text);
  await box.press('Enter');
}

export async function state(page) {
  return statusLine(page).getAttribute('data-state');
}

export async function waitState(page, wanted, timeout = 15_000) {
  await until(async () => (await state(page)) === wanted, { timeout, message: `status ${wanted} (now ${await state(page).catch(() => '?')})` });
}

/** Waits until `n` answers are final (not streaming) and returns the stored messages as {seq, role, status, text}. */
export async function waitAnswers(page, n, timeout = 20_000) {
  await until(async () => (await page.locator('#switchboard-widget [data-role="assistant"][data-seq]:not([data-status="streaming"])').count()) >= n,
    { timeout, message: `${n} final answer(s)` });
  return transcript(page);
}

export async function transcript(page) {
  return stored(page).evaluateAll((els) => els.map((e) => ({
    seq: Number(e.dataset.seq), role: e.dataset.role, status: e.dataset.status, author: e.dataset.author,
    text: (e.querySelector('.body') || e).textContent,
  })));
}

/** Records every text the first streaming answer shows while it streams (a MutationObserver in the page). */
export async function recordStreaming(page) {
  await page.evaluate(() => {
    const root = document.getElementById('switchboard-widget').shadowRoot;
    window.__texts = [];
    new MutationObserver(() => {
      const a = root.querySelector('[data-role="assistant"][data-status="streaming"]');
      const t = a && a.textContent;
      if (t && window.__texts[window.__texts.length - 1] !== t) window.__texts.push(t);
    }).observe(root, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

/** The widget's stored state for `tenant` in this page's localStorage. */
export function storedState(page, tenant = 'acme') {
  return page.evaluate((t) => JSON.parse(localStorage.getItem(`switchboard:${t}`) || 'null'), tenant);
}

/** Seqs must be unique and ascending in the DOM, and match the server's history (seq, role, content of final messages). */
export async function assertMatchesServer(assert, world, page) {
  const shown = await transcript(page);
  const seqs = shown.map((m) => m.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), `seqs unique and in order: ${seqs}`);
  const sid = (await storedState(page)).s;
  const res = await world.server.admin(`/sessions/${sid}`, { tenant: 'acme' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const kept = res.body.messages.filter((m) => m.role !== 'system');
  assert.deepEqual(shown.filter((m) => m.role !== 'system').map((m) => [m.seq, m.role, m.status]), kept.map((m) => [m.seq, m.role, m.status]));
  for (const m of kept) {
    if (m.role === 'user') assert.equal(shown.find((s) => s.seq === m.seq).text, m.content);
  }
  return shown;
}
