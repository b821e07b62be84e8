/** The worker registry: live worker processes and the jobs each holds. */
import { Type } from 'typebox';
import { listWorkersJson } from '../../app/worker-view.js';
import type { Api, HttpDeps } from '../deps.js';
import { Problem, Worker, WorkerListQuery } from '../schemas.js';

const problems = { 400: Problem, 401: Problem, 403: Problem };

export function workerRoutes(api: Api, deps: HttpDeps): void {
  const { app } = deps;

  api.get(
    '/api/v1/workers',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['workers'],
        summary:
          'Worker processes (coffer serve pools and coffer worker) that heartbeat into the catalog, with the jobs each holds; ?all=true adds lost ones',
        querystring: WorkerListQuery,
        response: { 200: Type.Array(Worker), ...problems },
      },
    },
    async (request) => listWorkersJson(app, { includeLost: request.query.all === true }),
  );
}
