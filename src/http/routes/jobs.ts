/** The jobs view over HTTP: list with filters and cursors, detail, live events, cancel, retry, release. */
import { Type } from 'typebox';
import { retryJob } from '../../app/triggers.js';
import { CofferError } from '../../errors/coffer-error.js';
import { isTerminal, type JobState, type Operation } from '../../jobs/job.js';
import { parseTimeArg } from '../../cli/format.js';
import { actorOf } from '../auth.js';
import type { Api, HttpDeps } from '../deps.js';
import { JobDetail, JobId, JobList, JobListQuery, Job, Problem, ReleaseRequest } from '../schemas.js';
import { jobOut, jobsOut } from '../views.js';

const problems = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem };

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^j_[0-9a-z]{16}$/.test(id))
    throw new CofferError('InvalidRequest', 'cursor is not one this server issued', {
      field: 'querystring.cursor',
    });
  return id;
}

export function jobRoutes(api: Api, deps: HttpDeps): void {
  const { app } = deps;

  api.get(
    '/api/v1/jobs',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        querystring: JobListQuery,
        response: { 200: JobList, ...problems },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = q.limit ?? 50;
      const jobs = await app.store.listJobs({
        vaultId: q.vault ? (await app.store.getVault(q.vault)).id : undefined,
        itemId: q.item ? (await app.store.getItem(q.item)).id : undefined,
        states: q.state ? (q.state.split(',') as JobState[]) : undefined,
        operations: q.operation ? (q.operation.split(',') as Operation[]) : undefined,
        since: q.since ? parseTimeArg(q.since, 'querystring.since') : undefined,
        until: q.until ? parseTimeArg(q.until, 'querystring.until') : undefined,
        before: q.cursor ? decodeCursor(q.cursor) : undefined,
        limit: limit + 1,
      });
      const page = jobs.slice(0, limit);
      const more = jobs.length > limit;
      return {
        jobs: await jobsOut(app, page),
        nextCursor: more ? Buffer.from(page[page.length - 1]!.id).toString('base64url') : null,
      };
    },
  );

  api.get(
    '/api/v1/jobs/:id',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['jobs'],
        summary: 'A job with its timeline',
        params: Type.Object({ id: JobId }),
        response: { 200: JobDetail, ...problems },
      },
    },
    async (request) => {
      const job = await app.store.getJob(request.params.id);
      const events = await app.store.listEvents(job.id);
      return {
        ...(await jobOut(app, job)),
        events: events.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
      };
    },
  );

  api.post(
    '/api/v1/jobs/:id/cancel',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job: a queued job never starts; a running one stops within about a second',
        params: Type.Object({ id: JobId }),
        response: { 202: Job, ...problems },
      },
    },
    async (request, reply) => {
      const job = await app.store.requestCancel(request.params.id);
      request.log.info({ jobId: job.id, itemId: job.itemId, by: actorOf(request) }, 'cancel requested');
      return reply.code(202).send(await jobOut(app, job));
    },
  );

  api.post(
    '/api/v1/jobs/:id/retry',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['jobs'],
        summary: 'A new job for the same item and operation',
        params: Type.Object({ id: JobId }),
        response: { 202: Job, ...problems },
      },
    },
    async (request, reply) => {
      const admission = await retryJob(app, request.params.id, { requestedBy: actorOf(request) });
      deps.metrics.admissions.inc({ operation: admission.job.operation });
      return reply.code(202).send(await jobOut(app, admission.job));
    },
  );

  api.post(
    '/api/v1/jobs/:id/release',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['jobs'],
        summary: "Free an item whose job's worker died; force (admin) fences a live worker",
        params: Type.Object({ id: JobId }),
        body: ReleaseRequest,
        response: { 200: Job, ...problems },
      },
    },
    async (request) => {
      const force = request.body?.force === true;
      if (force && request.principal?.role !== 'admin') {
        throw new CofferError('Forbidden', 'a forced release needs the admin role', {
          requiredRole: 'admin',
        });
      }
      const job = await app.store.release(request.params.id, { force });
      await app.store.audit(actorOf(request), force ? 'job.release.force' : 'job.release', job.id, {});
      return jobOut(app, job);
    },
  );

  api.get(
    '/api/v1/jobs/:id/events',
    {
      config: { role: 'reader' },
      schema: {
        tags: ['jobs'],
        summary:
          'Server-sent events: the current state first, then progress and state changes until the job ends',
        params: Type.Object({ id: JobId }),
        produces: ['text/event-stream'],
      },
    },
    async (request, reply) => {
      let last = await app.store.getJob(request.params.id);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      let seq = 0;
      const send = (event: string, data: unknown) =>
        raw.write(`event: ${event}\nid: ${++seq}\ndata: ${JSON.stringify(data)}\n\n`);
      deps.streams.add(raw);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        clearInterval(poll);
        clearInterval(keepalive);
        deps.streams.delete(raw);
        raw.end();
      };
      send('state', await jobOut(app, last));
      const poll = setInterval(async () => {
        try {
          const now = await app.store.getJob(last.id);
          if (now.state !== last.state) send('state', await jobOut(app, now));
          else if (now.bytesDone !== last.bytesDone || now.filesDone !== last.filesDone) {
            const j = await jobOut(app, now);
            send('progress', {
              id: j.id,
              state: j.state,
              progress: j.progress,
              bytesNew: j.bytesNew,
              bytesStored: j.bytesStored,
            });
          }
          last = now;
          if (isTerminal(now.state)) {
            send('end', { id: now.id, state: now.state });
            close();
          }
        } catch (err) {
          request.log.warn({ err, jobId: last.id }, 'event stream poll failed');
        }
      }, 250);
      const keepalive = setInterval(() => raw.write(': keepalive\n\n'), 15_000);
      if (isTerminal(last.state)) {
        send('end', { id: last.id, state: last.state });
        close();
      }
      request.raw.on('close', close);
    },
  );
}
