// A fake OpenAI-compatible upstream that streams Chat Completions chunks in the
// recorded wire shape (shared/reference/provider-wire-formats.md §1), word by
// word with a pause, so tests can watch an answer stream, reload or kill the
// server in the middle of it. `reply(lastUserText, body)` decides the answer, which may also be tool calls
// (the same file's "Tool calls while streaming"): the next request of the turn then carries `role: "tool"`
// messages, which `reply` finds in `body.messages` (see `toolResults`).
import { createServer } from 'node:http';

/** Splits text into words that keep their trailing whitespace. */
export const words = (text) => text.match(/\s*\S+\s*/g) || [text];

/** The `role: "tool"` messages of a request, as `{call_id, content}` with `content` parsed when it is JSON. */
export function toolResults(body) {
  return (body.messages || []).filter((m) => m.role === 'tool').map((m) => {
    let content = m.content;
    try { content = JSON.parse(m.content); } catch { /* a plain string result */ }
    return { call_id: m.tool_call_id, content };
  });
}

/**
 * `reply` returns a string, or { text, delayMs } (delayMs: pause before each
 * piece after the first; default `delayMs` of the options, 30 ms), or
 * { toolCalls: [{id, name, arguments}], text?, delayMs? }: the text (if any)
 * streams first, then each call as OpenAI streams it (a first chunk with its
 * `index`, `id`, `type`, `function.name` and empty `arguments`, then the
 * arguments in fragments), and the response ends with `finish_reason:
 * "tool_calls"`. `arguments` is an object (sent as its JSON) or a string sent as is.
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
    const { text = '', delayMs: pause = delayMs, toolCalls = [] } = typeof answer === 'string' ? { text: answer } : answer;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': `req_${calls.length}` });
    const base = { id: `chatcmpl-${calls.length}`, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: body.model, system_fingerprint: 'fp_test' };
    const send = (obj) => res.write(`data: ${JSON.stringify({ ...base, ...obj })}\n\n`);
    const chunk = (delta) => send({ choices: [{ index: 0, delta, logprobs: null, finish_reason: null }] });
    const wait = () => (pause > 0 ? new Promise((r) => setTimeout(r, pause)) : null);
    // A response of tool calls only starts with `content: null` and its first call, as recorded.
    const calls0 = toolCalls.map((c, index) => ({
      index, id: c.id, name: c.name, args: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {}),
    }));
    const opening = (c) => ({ index: c.index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } });
    if (text || !calls0.length) chunk({ role: 'assistant', content: '', refusal: null });
    else chunk({ role: 'assistant', content: null, tool_calls: [opening(calls0[0])] });
    const pieces = text ? words(text) : [];
    for (let i = 0; i < pieces.length; i++) {
      if (i > 0) await wait();
      if (res.destroyed) return;
      chunk({ content: pieces[i] });
    }
    for (const c of calls0) {
      if (text || c.index > 0) { await wait(); chunk({ tool_calls: [opening(c)] }); }
      // The arguments in three fragments, cut anywhere (even inside a string).
      const n = c.args.length, cuts = [0, Math.floor(n / 3), Math.floor((2 * n) / 3), n];
      for (let i = 0; i < 3; i++) {
        if (cuts[i] === cuts[i + 1]) continue;
        await wait();
        if (res.destroyed) return;
        chunk({ tool_calls: [{ index: c.index, function: { arguments: c.args.slice(cuts[i], cuts[i + 1]) } }] });
      }
    }
    send({ choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: calls0.length ? 'tool_calls' : 'stop' }] });
    const completion = pieces.length + calls0.length * 8;
    send({ choices: [], usage: { prompt_tokens: 12, completion_tokens: completion, total_tokens: 12 + completion } });
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
