// The browser tests' harness: the real binary, a host site on a second origin,
// a fake model upstream, a merchant's tool webhook, JWTs, Chromium, screenshots and accessibility checks.
export * from './server.mjs';
export * from './host.mjs';
export * from './upstream.mjs';
export * from './merchant.mjs';
export * from './jwt.mjs';
export * from './browser.mjs';

/** Polls `fn` until it returns a truthy value (or throws after `timeout` ms). */
export async function until(fn, { timeout = 10_000, interval = 50, message = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${message}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}
