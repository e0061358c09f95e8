// HS256 JWTs as a tenant's backend signs them (users and agents).
import { createHmac } from 'node:crypto';

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Signs `claims` (exp defaults to an hour from now) with `secret`. */
export function mintJwt(secret, claims) {
  const now = Math.floor(Date.now() / 1000);
  const body = { iat: now, exp: now + 3600, ...claims };
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(body)}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** A user of `tenant`. */
export const userToken = (secret, tenant, sub, extra = {}) => mintJwt(secret, { sub, tid: tenant, ...extra });

/** An agent (role admin) of `tenant`, shown as `name`. */
export const agentToken = (secret, tenant, sub, name) => mintJwt(secret, { sub, tid: tenant, name, role: 'admin' });
