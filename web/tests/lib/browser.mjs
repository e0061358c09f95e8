// Debian's Chromium driven by playwright-core (no browser download), plus
// screenshots (under target/screenshots/, or WEB_TESTS_SCREENSHOTS) and axe-core accessibility checks.
import { chromium } from 'playwright-core';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT } from './server.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SCREENSHOTS = process.env.WEB_TESTS_SCREENSHOTS
  ? path.resolve(process.env.WEB_TESTS_SCREENSHOTS)
  : path.join(ROOT, 'target', 'screenshots');

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/** Writes `<SCREENSHOTS>/<name>.png` and returns its path. */
export async function screenshot(page, name, options = {}) {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, ...options });
  return file;
}

let axeSource;
/**
 * Runs axe-core in the page (through the debugging protocol, so the page's CSP
 * does not stop it) and returns the violations of impact serious or critical.
 * `include`: a selector, or an array of selectors, to check only that part.
 */
export async function seriousViolations(page, include) {
  axeSource ??= await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  // Colours are judged as rendered: an element still fading in (the panel's
  // opening animation) has less contrast than it will have once shown, and
  // on a loaded machine the check can land mid-fade. Wait for the finite
  // animations of the page and of its open shadow roots to end first.
  await page.evaluate(async () => {
    const hosts = [...document.querySelectorAll('*')].filter((e) => e.shadowRoot);
    const roots = [document, ...hosts.map((e) => e.shadowRoot)];
    const running = roots.flatMap((r) => r.getAnimations());
    const finite = running.filter((a) => a.effect?.getComputedTiming().endTime !== Infinity);
    await Promise.all(finite.map((a) => a.finished.catch(() => {})));
  });
  const result = await page.evaluate(async (context) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(context ?? document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  }, include ?? null);
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
