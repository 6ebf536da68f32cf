import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DefaultPayloadConverter } from '@temporalio/common';
import type { Payload } from '@temporalio/common';
import { openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { CLAIM_ENCODING, ClaimCheckCodec, isClaim } from '../../src/common/claim-check.ts';

const converter = new DefaultPayloadConverter();
const payload = (value: unknown): Payload => converter.toPayload(value);
const value = (p: Payload): unknown => converter.fromPayload(p);

let store: ResultStore;
beforeAll(async () => {
  store = await openStore({ dbPath: ':memory:' });
});
afterAll(async () => store?.close());

const codec = (over: Partial<ConstructorParameters<typeof ClaimCheckCodec>[0]> = {}) =>
  new ClaimCheckCodec({ store: () => Promise.resolve(store), thresholdBytes: 4096, storeName: 'the test store', ...over });

describe('the claim-check codec', () => {
  it('leaves payloads at or under the threshold as they are', async () => {
    const small = payload({ id: 'a', text: 'x'.repeat(1000) });
    const [out] = await codec().encode([small]);
    expect(out).toBe(small);
    expect(isClaim(out!)).toBe(false);
  });

  it('keeps a larger payload in the store and puts a key of under 200 bytes in its place', async () => {
    const big = payload({ id: 'doc', text: 'y'.repeat(5 * 1024 * 1024) });
    const [claim] = await codec().encode([big]);
    expect(isClaim(claim!)).toBe(true);
    expect(new TextDecoder().decode(claim!.metadata!['encoding'])).toBe(CLAIM_ENCODING);
    expect(claim!.data!.byteLength).toBeLessThan(200);
    const { sha256, bytes } = JSON.parse(new TextDecoder().decode(claim!.data)) as { sha256: string; bytes: number };
    expect(bytes).toBeGreaterThan(5 * 1024 * 1024);
    expect(await store.getBlob(sha256)).not.toBeNull();
    // A fresh codec (another process: nothing cached) reads it back from the store, metadata included.
    const [back] = await codec().decode([claim!]);
    expect(value(back!)).toEqual({ id: 'doc', text: 'y'.repeat(5 * 1024 * 1024) });
    expect(back!.metadata).toEqual(big.metadata);
  });

  it('stores one copy of equal payloads and passes non-claims through decode', async () => {
    const c = codec();
    const p = payload({ text: 'z'.repeat(10_000) });
    const [a, b] = await c.encode([p, payload({ text: 'z'.repeat(10_000) })]);
    expect(a!.data).toEqual(b!.data);
    const plain = payload('plain');
    expect((await c.decode([plain]))[0]).toBe(plain);
  });

  it('names the store when a claim is missing from it, and refuses a blob that does not match its key', async () => {
    const [claim] = await codec().encode([payload({ text: 'w'.repeat(20_000) })]);
    const other = await openStore({ dbPath: ':memory:' });
    try {
      await expect(codec({ store: () => Promise.resolve(other), storeName: 'the SQLite store /tmp/other.db' }).decode([claim!])).rejects.toThrow(
        /claim-checked payload [0-9a-f]{64} is not in the SQLite store \/tmp\/other.db: every worker, CLI and console of a namespace must use the same results database/,
      );
      const { sha256 } = JSON.parse(new TextDecoder().decode(claim!.data)) as { sha256: string };
      await other.putBlob(sha256, new TextEncoder().encode('tampered'));
      await expect(codec({ store: () => Promise.resolve(other) }).decode([claim!])).rejects.toThrow(/does not match its key/);
    } finally {
      await other.close();
    }
  });

  it('opens an owned store only when a payload needs it, and closes it', async () => {
    let opened = 0;
    let closed = 0;
    const c = new ClaimCheckCodec({
      thresholdBytes: 4096,
      ownsStore: true,
      store: () => {
        opened += 1;
        return Promise.resolve({
          putBlob: (k: string, b: Uint8Array) => store.putBlob(k, b),
          getBlob: (k: string) => store.getBlob(k),
          close: () => Promise.resolve(void (closed += 1)),
        });
      },
    });
    await c.encode([payload('small')]);
    expect(opened).toBe(0);
    await c.encode([payload('v'.repeat(9000))]);
    await c.encode([payload('u'.repeat(9000))]);
    expect(opened).toBe(1);
    await c.close();
    expect(closed).toBe(1);
  });
});
