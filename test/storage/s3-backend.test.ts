import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isCofferError } from '../../src/errors/coffer-error.js';
import { openBackend } from '../../src/storage/open-backend.js';
import { S3Backend } from '../../src/storage/s3/s3-backend.js';
import { mapS3Error } from '../../src/storage/s3/s3-errors.js';
import { DEFAULT_PART_SIZE, parseS3Location, s3SettingsFromEnv } from '../../src/storage/s3/s3-settings.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';

const BUCKET = 'coffer-s3-test';
const MIB = 1024 * 1024;

/** A loopback HTTP server that answers every request with one S3 error document. */
async function refusingServer(status: number, code: string): Promise<{ endpoint: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>refused for the test</Message></Error>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('S3Backend against a loopback s3rver', () => {
  let s3: S3TestServer;
  let backend: S3Backend;

  before(async () => {
    s3 = await startS3Server([BUCKET]);
    backend = new S3Backend(`s3://${BUCKET}/repo/one`, s3.settings());
  });

  after(async () => {
    await s3.stop();
  });

  it('saves, loads whole and by range, stats, lists and removes', async () => {
    await backend.save('data/ab/abcdef', Buffer.from('0123456789'));
    await backend.save('index/one', Buffer.from('x'));
    assert.equal((await backend.load('data/ab/abcdef')).toString(), '0123456789');
    assert.equal((await backend.load('data/ab/abcdef', { offset: 3, length: 4 })).toString(), '3456');
    assert.equal((await backend.load('data/ab/abcdef', { offset: 9, length: 0 })).length, 0);
    assert.deepEqual(await backend.stat('data/ab/abcdef'), { size: 10 });
    assert.equal(await backend.stat('data/ab/missing'), null);
    assert.equal(await backend.stat('data/ab'), null);
    assert.deepEqual(await backend.list('data'), ['ab/abcdef']);
    assert.deepEqual(await backend.list('data/'), ['ab/abcdef']);
    assert.deepEqual(await backend.list(''), ['data/ab/abcdef', 'index/one']);
    assert.deepEqual(await backend.list('nothing-here'), []);
    assert.deepEqual(await backend.list('data/ab/abcdef'), []);
    await backend.save('index/one', Buffer.from('overwritten'));
    assert.equal((await backend.load('index/one')).toString(), 'overwritten');
    await backend.remove('index/one');
    await backend.remove('index/one');
    assert.equal(await backend.stat('index/one'), null);
    await backend.save('empty', new Uint8Array(0));
    assert.deepEqual(await backend.stat('empty'), { size: 0 });
    assert.equal((await backend.load('empty')).length, 0);
  });

  it('keeps repositories under different prefixes apart, and one at the bucket root sees all', async () => {
    const other = new S3Backend(`s3://${BUCKET}/repo/two/`, s3.settings());
    assert.equal(other.location, `s3://${BUCKET}/repo/two`);
    await other.save('config', Buffer.from('two'));
    assert.deepEqual(await other.list(''), ['config']);
    assert.ok(!(await backend.list('')).includes('config'));
    const root = new S3Backend(`s3://${BUCKET}`, s3.settings());
    assert.ok((await root.list('repo')).includes('two/config'));
    assert.equal((await root.load('repo/two/config')).toString(), 'two');
  });

  it('reports missing objects and short ranges as corruption, bad paths as invalid', async () => {
    await assert.rejects(backend.load('keys/none'), (e) => isCofferError(e, 'RepositoryCorrupt'));
    await assert.rejects(backend.load('keys/none', { offset: 0, length: 0 }), (e) =>
      isCofferError(e, 'RepositoryCorrupt'),
    );
    await backend.save('short', Buffer.from('abc'));
    await assert.rejects(backend.load('short', { offset: 1, length: 10 }), (e) =>
      isCofferError(e, 'RepositoryCorrupt'),
    );
    await assert.rejects(backend.load('short', { offset: 10, length: 2 }), (e) =>
      isCofferError(e, 'RepositoryCorrupt'),
    );
    await assert.rejects(backend.save('../escape', Buffer.from('x')), (e) =>
      isCofferError(e, 'InvalidRequest'),
    );
    await assert.rejects(backend.load('/etc/passwd'), (e) => isCofferError(e, 'InvalidRequest'));
    await assert.rejects(backend.list('a/../../b'), (e) => isCofferError(e, 'InvalidRequest'));
    await assert.rejects(backend.save('', Buffer.from('x')), (e) => isCofferError(e, 'InvalidRequest'));
  });

  it('uploads objects larger than the part size in parts, and reads ranges across them', async () => {
    const big = randomBytes(11 * MIB + 123);
    const before = (await s3.requests()).length;
    await backend.save('data/cd/big-pack', big);
    const sent = (await s3.requests()).slice(before);
    const parts = sent.filter(
      (r) => r.startsWith('PUT ') && r.includes('/big-pack?') && /partNumber=/.test(r),
    );
    assert.equal(parts.length, 3, sent.join('\n'));
    assert.ok(sent.some((r) => r.startsWith('POST ') && r.includes('/big-pack?uploadId=')));
    assert.ok((await backend.load('data/cd/big-pack')).equals(big));
    const across = { offset: 5 * MIB - 10, length: 20 };
    assert.ok(
      (await backend.load('data/cd/big-pack', across)).equals(
        big.subarray(across.offset, across.offset + 20),
      ),
    );
    assert.deepEqual(await backend.stat('data/cd/big-pack'), { size: big.length });

    const small = randomBytes(64 * 1024);
    const mark = (await s3.requests()).length;
    await backend.save('data/cd/small-pack', small);
    const sentSmall = (await s3.requests()).slice(mark);
    assert.deepEqual(
      sentSmall.map((r) => r.split('?')[0]),
      [`PUT /${BUCKET}/repo/one/data/cd/small-pack`],
    );
  });

  it('aborts a multipart upload whose part is refused: nothing becomes visible', async () => {
    // A loopback proxy in front of s3rver that refuses the second part of every upload.
    const target = new URL(s3.endpoint);
    const proxy = createServer((req, res) => {
      if (req.method === 'PUT' && /[?&]partNumber=2(&|$)/.test(req.url ?? '')) {
        req.resume();
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>');
        return;
      }
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const flaky = new S3Backend(`s3://${BUCKET}/repo/one`, s3.settings({ endpoint, partConcurrency: 1 }));
    try {
      const mark = (await s3.requests()).length;
      await assert.rejects(flaky.save('data/ef/refused-pack', randomBytes(11 * MIB)), (e) =>
        isCofferError(e, 'StorageUnavailable'),
      );
      assert.equal(await backend.stat('data/ef/refused-pack'), null);
      assert.ok(!(await backend.list('data')).some((n) => n.includes('refused-pack')));
      const sent = (await s3.requests()).slice(mark);
      assert.ok(
        sent.some((r) => r.startsWith('DELETE ') && r.includes('/refused-pack?uploadId=')),
        `the upload was aborted:\n${sent.join('\n')}`,
      );
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('pages through listings longer than one ListObjectsV2 page', async () => {
    const many = new S3Backend(`s3://${BUCKET}/many`, s3.settings());
    const names = Array.from({ length: 1010 }, (_, i) => `index/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(names.slice(i, i + 50).map((n) => many.save(n, Buffer.from(n))));
    }
    const mark = (await s3.requests()).length;
    assert.deepEqual(
      await many.list('index'),
      names.map((n) => n.slice('index/'.length)),
    );
    const lists = (await s3.requests()).slice(mark);
    assert.equal(lists.length, 2, lists.join('\n'));
    assert.ok(lists[1]!.includes('continuation-token='));
  });

  it('maps refused credentials and a missing bucket to StorageUnavailable', async () => {
    const wrongKey = new S3Backend(
      `s3://${BUCKET}/repo/one`,
      s3.settings({ credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } }),
    );
    await assert.rejects(
      wrongKey.load('short'),
      (e) => isCofferError(e, 'StorageUnavailable') && e.context.reason === 'access-denied',
    );
    await assert.rejects(wrongKey.save('x', Buffer.from('x')), (e) => isCofferError(e, 'StorageUnavailable'));

    const noBucket = new S3Backend('s3://no-such-bucket/p', s3.settings());
    await assert.rejects(
      noBucket.save('config', Buffer.from('x')),
      (e) => isCofferError(e, 'StorageUnavailable') && e.context.reason === 'no-such-bucket',
    );
    await assert.rejects(
      noBucket.list(''),
      (e) => isCofferError(e, 'StorageUnavailable') && e.context.reason === 'no-such-bucket',
    );
    // HEAD answers carry no error body, so a missing bucket looks like a missing object there.
    assert.equal(await noBucket.stat('config'), null);
  });

  it('maps an unreachable endpoint to StorageUnavailable after retrying', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const gone = new S3Backend(
      `s3://${BUCKET}/repo`,
      s3.settings({ endpoint: `http://127.0.0.1:${port}`, maxAttempts: 3 }),
    );
    await assert.rejects(gone.stat('config'), (e) => {
      assert.ok(isCofferError(e, 'StorageUnavailable'), String(e));
      assert.equal(e.context.reason, 'unreachable');
      return true;
    });
  });

  it('maps quota and out-of-space answers to StorageFull', async () => {
    for (const [status, code] of [
      [507, 'XMinioStorageFull'],
      [403, 'QuotaExceeded'],
      [507, 'InsufficientStorage'],
      [400, 'EntityTooLarge'],
    ] as const) {
      const { endpoint, server } = await refusingServer(status, code);
      const full = new S3Backend(`s3://${BUCKET}/repo`, s3.settings({ endpoint, maxAttempts: 1 }));
      try {
        await assert.rejects(full.save('data/ab/pack', randomBytes(1024)), (e) => {
          assert.ok(isCofferError(e, 'StorageFull'), `${code}: ${String(e)}`);
          assert.equal(e.context.s3Error, code);
          return true;
        });
        await assert.rejects(full.save('data/ab/big', randomBytes(6 * MIB)), (e) =>
          isCofferError(e, 'StorageFull'),
        );
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });
});

describe('S3 error mapping, settings and locations', () => {
  it('maps SDK error shapes to catalog codes and leaves the rest alone', () => {
    const shape = (name: string, status?: number, code?: string) =>
      Object.assign(new Error(name), {
        name,
        ...(code ? { code } : {}),
        $metadata: { httpStatusCode: status },
      });
    const mapped = (err: unknown) => {
      const m = mapS3Error(err, 's3://b/p', 'data/x');
      return isCofferError(m) ? `${m.code}:${String(m.context.reason ?? '')}` : 'unchanged';
    };
    assert.equal(mapped(shape('XMinioStorageFull', 507)), 'StorageFull:');
    assert.equal(mapped(shape('Whatever', 507)), 'StorageFull:');
    assert.equal(mapped(shape('QuotaExceeded', 403)), 'StorageFull:');
    assert.equal(mapped(shape('AccessDenied', 403)), 'StorageUnavailable:access-denied');
    assert.equal(mapped(shape('SignatureDoesNotMatch', 403)), 'StorageUnavailable:access-denied');
    assert.equal(mapped(shape('CredentialsProviderError')), 'StorageUnavailable:access-denied');
    assert.equal(mapped(shape('NoSuchBucket', 404)), 'StorageUnavailable:no-such-bucket');
    assert.equal(
      mapped(shape('AggregateError', undefined, 'ECONNREFUSED')),
      'StorageUnavailable:unreachable',
    );
    assert.equal(mapped(shape('SlowDown', 503)), 'StorageUnavailable:unreachable');
    assert.equal(mapped(shape('InvalidArgument', 400)), 'unchanged');
  });

  it('reads endpoint, region, credentials, path style and sizes from the environment', () => {
    const aws = s3SettingsFromEnv({ AWS_DEFAULT_REGION: 'eu-west-3' });
    assert.equal(aws.endpoint, undefined);
    assert.equal(aws.region, 'eu-west-3');
    assert.equal(aws.forcePathStyle, false);
    assert.equal(aws.credentials, undefined);
    assert.equal(aws.partSize, DEFAULT_PART_SIZE);
    const custom = s3SettingsFromEnv({
      AWS_ENDPOINT_URL: 'http://ignored:1',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
      AWS_REGION: 'garage',
      AWS_DEFAULT_REGION: 'ignored',
      AWS_ACCESS_KEY_ID: 'id',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_MAX_ATTEMPTS: '7',
      COFFER_S3_PART_SIZE_MIB: '64',
    });
    assert.equal(custom.endpoint, 'http://127.0.0.1:9000');
    assert.equal(custom.region, 'garage');
    assert.equal(custom.forcePathStyle, true);
    assert.deepEqual(custom.credentials, { accessKeyId: 'id', secretAccessKey: 'secret' });
    assert.equal(custom.maxAttempts, 7);
    assert.equal(custom.partSize, 64 * MIB);
    assert.equal(
      s3SettingsFromEnv({ AWS_ENDPOINT_URL: 'https://s3.example', COFFER_S3_FORCE_PATH_STYLE: 'false' })
        .forcePathStyle,
      false,
    );
    assert.equal(s3SettingsFromEnv({ COFFER_S3_FORCE_PATH_STYLE: '1' }).forcePathStyle, true);
    assert.throws(
      () => s3SettingsFromEnv({ COFFER_S3_FORCE_PATH_STYLE: 'maybe' }),
      (e) => isCofferError(e, 'InvalidRequest'),
    );
    assert.throws(
      () => s3SettingsFromEnv({ COFFER_S3_PART_SIZE_MIB: '4' }),
      (e) => isCofferError(e, 'InvalidRequest'),
    );
  });

  it('parses s3:// locations and refuses malformed ones', () => {
    assert.deepEqual(parseS3Location('s3://bucket/a/b/'), { bucket: 'bucket', prefix: 'a/b' });
    assert.deepEqual(parseS3Location('s3://bucket'), { bucket: 'bucket', prefix: '' });
    assert.deepEqual(parseS3Location('S3://my.bucket-1//x'), { bucket: 'my.bucket-1', prefix: 'x' });
    for (const bad of ['s3://', 's3://UPPER/x', 's3://ab/x', 's3://bucket/../x', 's3://bucket/a?b']) {
      assert.throws(
        () => parseS3Location(bad),
        (e) => isCofferError(e, 'InvalidRequest'),
        bad,
      );
    }
    const opened = openBackend('s3://bucket/prefix', { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:1' });
    assert.ok(opened instanceof S3Backend);
    assert.equal(opened.location, 's3://bucket/prefix');
  });
});
