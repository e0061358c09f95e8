// A tenant's own web site on a second origin (another port of 127.0.0.1) that
// embeds the widget, optionally under a Content-Security-Policy of its own.
import { createServer } from 'node:http';

export async function startHost() {
  const pages = new Map();
  const sockets = new Set();
  const server = createServer((req, res) => {
    const page = pages.get(new URL(req.url, 'http://x').pathname);
    if (!page) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
    const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
    if (page.csp) headers['content-security-policy'] = page.csp;
    res.writeHead(200, headers);
    res.end(typeof page.html === 'function' ? page.html() : page.html);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    url: (pathname = '/') => origin + pathname,
    /** Serves `html` (a string, or a function called per request) at `pathname`. */
    page(pathname, html, { csp } = {}) { pages.set(pathname, { html, csp }); return origin + pathname; },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const escapeAttr = (v) => String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * A host page embedding the widget of `server` (a URL) for `tenant`, with more
 * `data-*` attributes, and `head`/`body` HTML of the host's own.
 */
export function widgetPage({ server, tenant, attrs = {}, head = '', body = '<main><h1>A shop</h1><p>Products.</p></main>', lang = 'en', dir } = {}) {
  const data = Object.entries(attrs).map(([k, v]) => ` data-${k}="${escapeAttr(v)}"`).join('');
  return `<!doctype html><html lang="${lang}"${dir ? ` dir="${dir}"` : ''}><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"><title>Host shop</title>${head}` +
    `<script src="${server}/widget.js" data-tenant="${escapeAttr(tenant)}"${data} async></script></head><body>${body}</body></html>`;
}

/** The strict policy a careful host sets: the Switchboard origin named, nothing inline. */
export function strictHostCsp(serverUrl) {
  const ws = serverUrl.replace(/^http/, 'ws');
  return `default-src 'none'; script-src ${serverUrl}; style-src ${serverUrl}; img-src ${serverUrl} data:; ` +
    `connect-src ${serverUrl} ${ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}
