// A tenant's own shop backend answering Switchboard's webhook tool calls (SPEC §16), as a merchant writes
// one: every call is verified with the official Standard Webhooks library (npm `standardwebhooks`) on the
// raw body; a call that does not verify is answered 401. `tools` maps a tool name to a function of the
// verified call returning the answer `{result, display?}`. `verifiers` are live product checks (a tenant's
// `verify_url`), signed with a secret of their own and checked the same way: each maps a name, served at
// `/verify/<name>`, to a function of the verified `{type: "products.verify", ids}` returning `{items}`.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

/** A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** An inline SVG picture (a `data:image/svg+xml,…` URL): a shoe-ish shape on `background`. */
export function svgImage(background, color = '#fff') {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 120"><rect width="120" height="120" fill="${background}"/>` +
    `<path d="M18 78c0-10 6-30 14-34 6 8 18 12 30 10l10 14c10 2 24 4 32 10 4 4 2 10-4 10H24c-4 0-6-4-6-10z" fill="${color}"/>` +
    `<path d="M18 84h86v6H18z" fill="${color}" opacity=".6"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/**
 * Starts the merchant on 127.0.0.1 port 0. `calls`: every verified call (the parsed body, plus its
 * `headers`); `rejected`: the calls that did not verify, `{headers, error}`. `url`: the tool endpoint.
 * `checks`: every verified product check (the parsed body, plus `verifier` and `headers`); `verifyUrl(name)`
 * and `verifySecret`: what a tenant's `verify_url` and `verify_secret_env` give.
 */
export async function startMerchant({ secret = newWebhookSecret(), verifySecret = newWebhookSecret(), tools = {}, verifiers = {} } = {}) {
  const hook = new Webhook(secret);
  const verifyHook = new Webhook(verifySecret);
  const calls = [];
  const checks = [];
  const rejected = [];
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const pathname = new URL(req.url, 'http://x').pathname;
    const verifier = pathname.startsWith('/verify/') && Object.hasOwn(verifiers, pathname.slice(8)) ? pathname.slice(8) : null;
    if (req.method === 'POST' && verifier) {
      let check;
      try {
        check = verifyHook.verify(raw, req.headers);
      } catch (e) {
        rejected.push({ headers: req.headers, error: e.message, verifier });
        return json(401, { error: 'bad signature' });
      }
      checks.push({ ...check, verifier, headers: req.headers });
      const answer = await verifiers[verifier](check);
      if (res.destroyed) return undefined;
      return json(200, answer);
    }
    if (req.method !== 'POST' || pathname !== '/tools') return json(404, { error: 'not found' });
    let call;
    try {
      call = hook.verify(raw, req.headers);
    } catch (e) {
      rejected.push({ headers: req.headers, error: e.message });
      return json(401, { error: 'bad signature' });
    }
    calls.push({ ...call, headers: req.headers });
    const answer = tools[call.tool];
    if (!answer) return json(200, { result: { error: `unknown tool ${call.tool}` } });
    return json(200, await answer(call));
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    secret,
    verifySecret,
    url: `${origin}/tools`,
    verifyUrl: (name) => `${origin}/verify/${name}`,
    calls,
    checks,
    rejected,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
