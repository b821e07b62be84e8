/**
 * API tokens over HTTP. With no tokens in the catalog the server is loopback-only (checked at
 * start) and every request acts as the local admin; once a token exists, every API request
 * needs one, with a role that covers the route.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { roleAllows, type Principal, type Role } from '../access/roles.js';
import { hashToken, looksLikeToken } from '../access/tokens.js';
import type { CatalogStore } from '../catalog/store.js';
import { CofferError } from '../errors/coffer-error.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Least role that may call the route; absent means public (health, docs). */
    role?: Role;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const LOCAL: Principal = { name: 'local', role: 'admin' };
const CACHE_MS = 2000;

export class Authenticator {
  private tokensExist: { value: boolean; at: number } | null = null;

  constructor(private readonly store: CatalogStore) {}

  async tokensConfigured(): Promise<boolean> {
    const now = Date.now();
    if (!this.tokensExist || now - this.tokensExist.at > CACHE_MS) {
      this.tokensExist = { value: (await this.store.countActiveTokens()) > 0, at: now };
    }
    return this.tokensExist.value;
  }

  /** onRequest hook: resolves the principal and enforces the route's role. */
  readonly hook = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const needed = request.routeOptions.config?.role;
    request.principal = null;
    if (!needed) return;
    if (!(await this.tokensConfigured())) {
      request.principal = LOCAL;
      return;
    }
    const header = request.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const token = m?.[1];
    const found = token && looksLikeToken(token) ? await this.store.findToken(hashToken(token)) : null;
    if (!found) {
      throw new CofferError(
        'Unauthenticated',
        header
          ? 'the API token is not valid or was revoked'
          : 'this server requires an API token (Authorization: Bearer <token>)',
      );
    }
    request.principal = { name: found.name, role: found.role };
    if (!roleAllows(found.role, needed)) {
      throw new CofferError(
        'Forbidden',
        `token '${found.name}' has role ${found.role}; this needs ${needed}`,
        { requiredRole: needed, role: found.role },
      );
    }
  };
}

/** How a request is recorded as `requestedBy` and in the audit log. */
export function actorOf(request: FastifyRequest): string {
  const p = request.principal;
  return p && p !== LOCAL ? `token:${p.name}` : `local:${request.ip}`;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
