/**
 * Who the caller is, so the dashboard can hide the buttons a role may not use. The routes
 * behind those buttons still check the role themselves; this only saves a click on a refusal.
 */
import { Type } from 'typebox';
import { ROLES } from '../../access/roles.js';
import type { Authenticator } from '../auth.js';
import type { Api } from '../deps.js';
import { Problem } from '../schemas.js';

const Whoami = Type.Object({
  name: Type.String({ description: "the token's name, or 'local' when the server has no tokens" }),
  role: Type.String({ enum: [...ROLES] }),
  tokensRequired: Type.Boolean({ description: 'whether every API request needs a bearer token' }),
});

export function whoamiRoutes(api: Api, auth: Authenticator): void {
  api.get(
    '/api/v1/whoami',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['access'],
        summary: 'The name and role behind this request',
        response: { 200: Whoami, 401: Problem },
      },
    },
    async (request) => {
      // The auth hook has resolved the principal: a token's, or the local admin without tokens.
      const principal = request.principal!;
      return { name: principal.name, role: principal.role, tokensRequired: await auth.tokensConfigured() };
    },
  );
}
