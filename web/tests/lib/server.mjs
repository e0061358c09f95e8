// The real switchboard binary on 127.0.0.1 port 0 with its own data directory,
// as a user runs it: start, stop (SIGTERM), kill (SIGKILL), restart on the same
// data and the same port, plus small helpers for the HTTP API.
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile, rm, readFile } from 'node:fs/promises';
import { createWriteStream, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const OPERATOR_TOKEN = 'operator-token-of-the-browser-tests-0123456789';

/** The binary the tests run: SWITCHBOARD_BIN, else the debug build of the target directory. */
export function binaryPath() {
  if (process.env.SWITCHBOARD_BIN) return process.env.SWITCHBOARD_BIN;
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
  return path.join(target, 'debug', 'switchboard');
}

/**
 * Starts the server. `config` is TOML appended after the harness's own top-level
 * keys (listen, data_dir): put top-level keys (public_url, …) before any table.
 * `env` adds environment variables (secrets of tenant JWT keys, say).
 */
export async function startServer({ config = '', env = {} } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`no switchboard binary at ${bin}: run cargo build -p switchboard-server first`);
  const dir = await mkdtemp(path.join(tmpdir(), 'switchboard-web-'));
  const server = new Server(bin, dir, config, { SWITCHBOARD_OPERATOR_TOKEN: OPERATOR_TOKEN, ...env });
  await server.spawn('127.0.0.1:0');
  return server;
}

class Server {
  constructor(bin, dir, config, env) {
    this.bin = bin;
    this.dir = dir;
    this.config = config;
    this.env = env;
    this.operatorToken = env.SWITCHBOARD_OPERATOR_TOKEN;
    this.child = null;
    this.url = null;
    this.logPath = path.join(dir, 'server.log');
  }

  get origin() { return this.url; }
  get dataDir() { return path.join(this.dir, 'data'); }

  async spawn(listen) {
    const explicitPublicUrl = /^\s*public_url\s*=/m.test(this.config);
    const publicUrl = this.url && !explicitPublicUrl ? `public_url = "${this.url}"\n` : '';
    const text = `listen = "${listen}"\ndata_dir = "${this.dataDir}"\n${publicUrl}${this.config}\n`;
    const configPath = path.join(this.dir, 'config.toml');
    await writeFile(configPath, text);
    const log = createWriteStream(this.logPath, { flags: 'a' });
    // SWITCHBOARD_BIN names the binary for the harness; the server would read it as a setting and refuse it.
    const { SWITCHBOARD_BIN: _bin, ...inherited } = process.env;
    const child = spawn(this.bin, ['serve', '--config', configPath], {
      env: { ...inherited, RUST_LOG: process.env.RUST_LOG || 'warn', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.pipe(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the server did not start within 30 s; log: ${this.logPath}`)), 30_000);
      child.stdout.on('data', (chunk) => {
        out += chunk;
        const m = /switchboard listening on (http:\/\/\S+)/.exec(out);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the server exited (${code}) before listening; log: ${this.logPath}`)); });
    });
  }

  /** SIGKILL: nothing gets to finish. */
  async kill() {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  /** SIGTERM: the graceful shutdown. */
  async stop() {
    if (!this.child) return;
    this.child.kill('SIGTERM');
    await this.exited;
    this.child = null;
  }

  /** Starts again on the same data and the same port (clients reconnect to the same URL). */
  async restart() {
    await this.kill();
    const port = new URL(this.url).port;
    await this.spawn(`127.0.0.1:${port}`);
  }

  /** Stops the process and removes its directory. */
  async close() {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  async log() { return readFile(this.logPath, 'utf8').catch(() => ''); }

  /** A JSON request to the API; returns { status, headers, body }. */
  async request(pathname, { method = 'GET', token, tenant, origin, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    if (tenant) h['x-tenant-id'] = tenant;
    if (origin) h.origin = origin;
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await fetch(this.url + pathname, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, headers: res.headers, body: json };
  }

  /** An admin API call as the operator, naming `tenant` with X-Tenant-Id. */
  admin(pathname, options = {}) {
    return this.request(`/v1/admin${pathname}`, { token: this.operatorToken, ...options });
  }
}

/** A JSON value as a TOML value (inline tables and arrays), for tool parameters and the like. */
export function tomlValue(v) {
  if (v === null || v === undefined) throw new Error('TOML has no null');
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (typeof v === 'object') {
    const key = (k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));
    return `{ ${Object.entries(v).map(([k, x]) => `${key(k)} = ${tomlValue(x)}`).join(', ')} }`;
  }
  return JSON.stringify(v);
}

/**
 * `[[tenants]]` TOML. `origins`: allowed origins; `jwtSecretEnv`: the variable
 * holding its HS256 user-JWT secret; `upstream`: a fake OpenAI base URL (else
 * the offline demo model); `extra`: more TOML lines of the tenant table;
 * `tools`: webhook tools, each `{name, description, parameters, url, secret_env,
 * timeout_ms?}`, written as `[[tenants.tools]]` tables (their URLs on 127.0.0.1
 * need the top-level `tool_allow_private = ["127.0.0.1"]` in the config).
 */
export function tenantToml({ id, name = id, origins = [], jwtSecretEnv, upstream, extra = '', tools = [] }) {
  const lines = [
    '[[tenants]]',
    `id = "${id}"`,
    `name = "${name}"`,
    `allowed_origins = ${JSON.stringify(origins)}`,
  ];
  if (extra) lines.push(extra);
  if (jwtSecretEnv) lines.push('[tenants.jwt]', `hs256_secret_env = "${jwtSecretEnv}"`);
  lines.push('[tenants.provider]');
  if (upstream) lines.push('kind = "openai"', `base_url = "${upstream}/v1"`, 'model = "fake-model"');
  else lines.push('kind = "demo"');
  for (const tool of tools) {
    lines.push('[[tenants.tools]]');
    for (const [k, v] of Object.entries(tool)) if (v !== undefined) lines.push(`${k} = ${tomlValue(v)}`);
  }
  return lines.join('\n') + '\n';
}
