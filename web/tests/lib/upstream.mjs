// A fake OpenAI-compatible upstream that streams Chat Completions chunks in the
// recorded wire shape (shared/reference/provider-wire-formats.md §1), word by
// word with a pause, so tests can watch an answer stream, reload or kill the
// server in the middle of it. `reply(lastUserText, body)` decides the answer.
import { createServer } from 'node:http';

/** Splits text into words that keep their trailing whitespace. */
export const words = (text) => text.match(/\s*\S+\s*/g) || [text];

/**
 * `reply` returns a string, or { text, delayMs } (delayMs: pause before each
 * piece after the first; default `delayMs` of the options, 30 ms).
 */
export async function startFakeOpenAI({ reply = (q) => `You said: ${q}`, delayMs = 30 } = {}) {
  const calls = [];
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}');
      return;
    }
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw);
    const last = [...body.messages].reverse().find((m) => m.role === 'user');
    const question = typeof last?.content === 'string' ? last.content : '';
    calls.push({ question, body });
    const answer = await reply(question, body);
    const { text, delayMs: pause = delayMs } = typeof answer === 'string' ? { text: answer } : answer;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': `req_${calls.length}` });
    const base = { id: `chatcmpl-${calls.length}`, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: body.model, system_fingerprint: 'fp_test' };
    const send = (obj) => res.write(`data: ${JSON.stringify({ ...base, ...obj })}\n\n`);
    send({ choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }] });
    const pieces = words(text);
    for (let i = 0; i < pieces.length; i++) {
      if (i > 0 && pause > 0) await new Promise((r) => setTimeout(r, pause));
      if (res.destroyed) return;
      send({ choices: [{ index: 0, delta: { content: pieces[i] }, logprobs: null, finish_reason: null }] });
    }
    send({ choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] });
    send({ choices: [], usage: { prompt_tokens: 12, completion_tokens: pieces.length, total_tokens: 12 + pieces.length } });
    res.end('data: [DONE]\n\n');
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    calls,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
