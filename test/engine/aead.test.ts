import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import {
  cipherImplementation,
  KEY_LENGTH,
  nodeCryptoAesGcm,
  open,
  openInto,
  SEAL_OVERHEAD,
  seal,
} from '../../src/engine/crypto/aead.js';
import { nativeAesGcm } from '../../src/engine/crypto/native-aes-gcm.js';

const SIZES = [0, 1, 65_535, 65_536, 65_537, 1024 * 1024 + 3];

describe('AES-256-GCM', () => {
  const native = nativeAesGcm();

  it('uses the native addon that npm install builds', () => {
    // A missing addon would silently fall back to node:crypto; the install must build it.
    assert.ok(native, 'native/aes-gcm/build/Release/aes_gcm.node is built');
    assert.equal(cipherImplementation, 'native');
  });

  it('seals and opens the same bytes as node:crypto, both ways, at every size', () => {
    assert.ok(native);
    const key = randomBytes(KEY_LENGTH);
    const nonce = randomBytes(12);
    for (const size of SIZES) {
      const plain = randomBytes(size);
      const a = Buffer.alloc(size + 16);
      const b = Buffer.alloc(size + 16);
      native.seal(key, nonce, plain, a);
      nodeCryptoAesGcm.seal(key, nonce, plain, b);
      assert.ok(a.equals(b), `same ciphertext and tag at ${size} bytes`);
      const body = a.subarray(0, size);
      const tag = a.subarray(size);
      const outNative = Buffer.alloc(size);
      const outNode = Buffer.alloc(size);
      assert.equal(native.open(key, nonce, body, tag, outNative), true);
      assert.equal(nodeCryptoAesGcm.open(key, nonce, body, tag, outNode), true);
      assert.ok(outNative.equals(plain) && outNode.equals(plain), `round trip at ${size} bytes`);
    }
  });

  it('refuses tampered ciphertext, a wrong tag and a wrong key', () => {
    const key = randomBytes(KEY_LENGTH);
    const plain = randomBytes(100_000);
    const sealed = seal(key, plain);
    assert.equal(sealed.length, plain.length + SEAL_OVERHEAD);
    assert.ok(open(key, sealed)?.equals(plain));
    const flipped = Buffer.from(sealed);
    flipped.writeUInt8(flipped.readUInt8(5000) ^ 1, 5000);
    assert.equal(open(key, flipped), null);
    const badTag = Buffer.from(sealed);
    badTag.writeUInt8(badTag.readUInt8(badTag.length - 1) ^ 0x80, badTag.length - 1);
    assert.equal(open(key, badTag), null);
    assert.equal(open(randomBytes(KEY_LENGTH), sealed), null);
    assert.equal(open(key, sealed.subarray(0, SEAL_OVERHEAD - 1)), null, 'too short to hold nonce and tag');
  });

  it('opens into a caller buffer larger than the plaintext and returns the plaintext view', () => {
    const key = randomBytes(KEY_LENGTH);
    const plain = randomBytes(70_000);
    const out = Buffer.alloc(200_000);
    const view = openInto(key, seal(key, plain), out);
    assert.ok(view);
    assert.equal(view.buffer, out.buffer);
    assert.ok(view.equals(plain));
  });

  it('throws on malformed arguments instead of reading or writing out of bounds', () => {
    assert.ok(native);
    const key = randomBytes(KEY_LENGTH);
    const nonce = randomBytes(12);
    const plain = randomBytes(1000);
    assert.throws(() => native.seal(key, nonce, plain, Buffer.alloc(1015)), RangeError);
    assert.throws(() => native.seal(key, nonce, plain, Buffer.alloc(1017)), RangeError);
    assert.throws(() => native.seal(key.subarray(0, 16), nonce, plain, Buffer.alloc(1016)), RangeError);
    assert.throws(() => native.seal(key, nonce.subarray(0, 8), plain, Buffer.alloc(1016)), RangeError);
    assert.throws(() => native.open(key, nonce, plain, Buffer.alloc(16), Buffer.alloc(999)), RangeError);
    assert.throws(() => native.open(key, nonce, plain, Buffer.alloc(8), Buffer.alloc(1000)), RangeError);
    assert.throws(
      () => (native.seal as (...args: unknown[]) => void)('not a key', nonce, plain, Buffer.alloc(1016)),
      TypeError,
    );
    assert.throws(() => nodeCryptoAesGcm.seal(key, nonce, plain, Buffer.alloc(1015)), RangeError);
  });

  it('falls back to node:crypto with COFFER_NATIVE_CIPHER=off and reads what the addon sealed', () => {
    const key = randomBytes(KEY_LENGTH);
    const plain = randomBytes(300_000);
    const sealed = seal(key, plain);
    const module = fileURLToPath(new URL('../../src/engine/crypto/aead.js', import.meta.url));
    // The sealed bytes go through stdin: as an argument they would exceed the kernel's limit.
    const script = `
      const { open, seal, cipherImplementation } = await import(${JSON.stringify(module)});
      let input = '';
      for await (const part of process.stdin) input += part;
      const { key, sealed } = JSON.parse(input);
      const plain = open(Buffer.from(key, 'hex'), Buffer.from(sealed, 'base64'));
      process.stdout.write(JSON.stringify({ impl: cipherImplementation, plain: plain?.toString('base64'),
        resealed: seal(Buffer.from(key, 'hex'), plain).toString('base64') }));`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, COFFER_NATIVE_CIPHER: 'off' },
        input: JSON.stringify({ key: key.toString('hex'), sealed: sealed.toString('base64') }),
        maxBuffer: 16 * 1024 * 1024,
      }).toString(),
    ) as { impl: string; plain: string; resealed: string };
    assert.equal(out.impl, 'node:crypto');
    assert.ok(Buffer.from(out.plain, 'base64').equals(plain));
    assert.ok(
      open(key, Buffer.from(out.resealed, 'base64'))?.equals(plain),
      'the addon opens what node:crypto sealed',
    );
  });
});
