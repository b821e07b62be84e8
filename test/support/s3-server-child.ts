// Child process of test/support/s3-server.ts: runs s3rver on loopback and reports its port and
// every request it receives on stdout, one line each. It runs in its own process because s3rver
// signs ListObjectsV2 continuation tokens with DES, which Node 20's OpenSSL 3 only offers under
// --openssl-legacy-provider. Without arguments (as when `node --test` loads every file) it does nothing.
import { createRequire } from 'node:module';
import type { Server } from 'node:http';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  httpServer: Server;
}
type S3rverClass = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string; configs: never[] }[];
}) => S3rverInstance;

const [directory, ...buckets] = process.argv.slice(2);
if (directory) {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const { port } = await server.run();
  server.httpServer.on('request', (req: { method?: string; url?: string }) => {
    process.stdout.write(`request ${req.method ?? ''} ${req.url ?? ''}\n`);
  });
  process.stdout.write(`listening ${port}\n`);
  const stop = (): void => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The parent holds stdin open; when it dies without stopping us, stdin ends and so do we.
  process.stdin.on('end', stop);
  process.stdin.resume();
}
