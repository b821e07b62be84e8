/**
 * A TCP proxy the test controls, to cut one process off from PostgreSQL without touching the
 * server or any other client: `cut('blackhole')` stops forwarding in both directions (packets
 * vanish, as in a network partition: queries hang, nothing errors), `cut('reset')` drops every
 * connection and refuses new ones; `restore()` forwards again (held bytes are then delivered).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type CutMode = 'blackhole' | 'reset';

export interface TcpProxy {
  port: number;
  /** host:port to put into a connection URL. */
  address: string;
  cut(mode: CutMode): void;
  restore(): void;
  /** Connections accepted so far (for asserting a process reconnected). */
  readonly accepted: number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: CutMode | null = null;
  let accepted = 0;
  const held: Pair[] = [];

  const wire = (p: Pair): void => {
    p.client.pipe(p.server);
    p.server.pipe(p.client);
  };
  const hold = (p: Pair): void => {
    p.client.unpipe(p.server);
    p.server.unpipe(p.client);
    p.client.pause();
    p.server.pause();
  };

  const server: Server = createServer((client) => {
    accepted++;
    if (mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const pair: Pair = { client, server: upstream };
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    if (mode === 'blackhole') {
      // A new connection during a partition: the SYN "gets through" to us but nothing flows.
      client.pause();
      upstream.pause();
      held.push(pair);
    } else wire(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    address: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    cut(m) {
      mode = m;
      for (const p of [...pairs]) {
        if (m === 'reset') {
          pairs.delete(p);
          p.client.resetAndDestroy();
          p.server.destroy();
        } else {
          hold(p);
          held.push(p);
        }
      }
    },
    restore() {
      mode = null;
      for (const p of held.splice(0)) {
        if (!pairs.has(p)) continue;
        wire(p);
        p.client.resume();
        p.server.resume();
      }
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
