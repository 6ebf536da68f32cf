/**
 * Claim check for Temporal payloads: a payload larger than the threshold is kept in
 * the results database under the SHA-256 of its bytes, and history, activity
 * inputs and results, child inputs and continue-as-new carries hold only the key.
 * Workflows never see the difference: the worker decodes before the sandbox.
 *
 * So a big document, a truncated prompt or a long answer never meets Temporal's
 * payload or history limits, by design. Every process that reads or writes those
 * payloads (workers, the CLI, the console) must use the same database: a key whose
 * blob is missing fails the decode with an error naming the store.
 */
import { createHash } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Config } from './config.ts';

/** Metadata `encoding` of a claim: its data is `{"sha256": "<hex>", "bytes": n}`. */
export const CLAIM_ENCODING = 'binary/steadfast-claim';
/** Default threshold: payloads above this many bytes are claim-checked. */
export const DEFAULT_CLAIM_BYTES = 128 * 1024;
const CACHE_BYTES = 64 * 1024 * 1024;

/** Where claim-checked payloads live (the results store implements it). */
export interface BlobStore {
  putBlob(key: string, payload: Uint8Array): Promise<void>;
  getBlob(key: string): Promise<Uint8Array | null>;
  close?(): Promise<void>;
}

/** Options of {@link ClaimCheckCodec}. */
export interface ClaimCheckOptions {
  /** The store, opened on first use (a CLI that never meets a large payload never opens it). */
  store: () => Promise<BlobStore>;
  /** Payloads larger than this many bytes (encoded) are claim-checked. @default DEFAULT_CLAIM_BYTES */
  thresholdBytes?: number;
  /** Names the store in errors, e.g. `SQLite data/steadfast.db`. */
  storeName?: string;
  /** Bytes of recently seen payloads kept in memory, so a cached workflow's replay rarely reads the store. @default 64 MiB */
  cacheBytes?: number;
  /** {@link ClaimCheckCodec.close} closes the store (it was opened for this codec). @default false */
  ownsStore?: boolean;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
// CommonJS: Node's ESM loader sees only its default export.
const PayloadProto = proto.temporal.api.common.v1.Payload;

/** Encoded size of a payload, without encoding it: data plus metadata keys and values. */
function roughSize(p: Payload): number {
  let n = p.data?.byteLength ?? 0;
  for (const [k, v] of Object.entries(p.metadata ?? {})) n += k.length + (v?.byteLength ?? 0) + 4;
  return n;
}

/** True when a payload is a claim (its bytes are in the blob store). */
export function isClaim(p: Payload): boolean {
  const enc = p.metadata?.['encoding'];
  return enc !== undefined && enc !== null && fromUtf8.decode(enc) === CLAIM_ENCODING;
}

/** A `PayloadCodec` that claim-checks payloads above a size threshold. */
export class ClaimCheckCodec implements PayloadCodec {
  readonly thresholdBytes: number;
  private readonly openStore: () => Promise<BlobStore>;
  private store: Promise<BlobStore> | null = null;
  private readonly storeName: string;
  private readonly cacheBytes: number;
  private readonly cache = new Map<string, Uint8Array>();
  private cached = 0;
  private readonly ownsStore: boolean;

  constructor(opts: ClaimCheckOptions) {
    this.openStore = opts.store;
    this.ownsStore = opts.ownsStore ?? false;
    this.thresholdBytes = opts.thresholdBytes ?? DEFAULT_CLAIM_BYTES;
    this.storeName = opts.storeName ?? 'the results store';
    this.cacheBytes = opts.cacheBytes ?? CACHE_BYTES;
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(payloads.map((p) => this.encodeOne(p)));
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(payloads.map((p) => this.decodeOne(p)));
  }

  /** Closes the store if this codec opened it. */
  async close(): Promise<void> {
    const store = this.store;
    this.store = null;
    if (this.ownsStore && store) await (await store.catch(() => null))?.close?.();
  }

  private blobs(): Promise<BlobStore> {
    this.store ??= this.openStore().catch((err: unknown) => {
      this.store = null;
      throw err;
    });
    return this.store;
  }

  private async encodeOne(p: Payload): Promise<Payload> {
    if (roughSize(p) <= this.thresholdBytes || isClaim(p)) return p;
    const bytes = PayloadProto.encode(p).finish();
    if (bytes.byteLength <= this.thresholdBytes) return p;
    const key = createHash('sha256').update(bytes).digest('hex');
    if (!this.cache.has(key)) await (await this.blobs()).putBlob(key, bytes);
    this.remember(key, bytes);
    return { metadata: { encoding: utf8.encode(CLAIM_ENCODING) }, data: utf8.encode(JSON.stringify({ sha256: key, bytes: bytes.byteLength })) };
  }

  private async decodeOne(p: Payload): Promise<Payload> {
    if (!isClaim(p)) return p;
    let key: string;
    try {
      key = String((JSON.parse(fromUtf8.decode(p.data ?? new Uint8Array())) as { sha256?: unknown }).sha256);
    } catch {
      throw new Error('a claim-checked payload has no readable key');
    }
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`a claim-checked payload names an invalid key "${key.slice(0, 80)}"`);
    let bytes = this.cache.get(key) ?? null;
    if (!bytes) {
      bytes = await (await this.blobs()).getBlob(key);
      if (!bytes) {
        throw new Error(
          `claim-checked payload ${key} is not in ${this.storeName}: every worker, CLI and console of a namespace must use the same results database (STEADFAST_DB_PATH or DATABASE_URL)`,
        );
      }
      if (createHash('sha256').update(bytes).digest('hex') !== key) throw new Error(`claim-checked payload ${key} in ${this.storeName} does not match its key`);
    }
    this.remember(key, bytes);
    return PayloadProto.decode(bytes) as Payload;
  }

  /** Least-recently-used cache by bytes. */
  private remember(key: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.cacheBytes / 4) return;
    const had = this.cache.get(key);
    if (had) {
      this.cache.delete(key);
      this.cached -= had.byteLength;
    }
    this.cache.set(key, bytes);
    this.cached += bytes.byteLength;
    for (const [k, v] of this.cache) {
      if (this.cached <= this.cacheBytes) break;
      this.cache.delete(k);
      this.cached -= v.byteLength;
    }
  }
}

/** Names the configured results store in errors. */
export function storeName(config: Config): string {
  return config.databaseUrl ? 'the PostgreSQL store (DATABASE_URL)' : `the SQLite store ${config.dbPath}`;
}

/**
 * The codec of a client-side process (CLI, console, demo): `open` opens the results
 * store on first use and {@link ClaimCheckCodec.close} closes it.
 */
export function clientCodec(config: Config, open: () => Promise<BlobStore>): ClaimCheckCodec {
  return new ClaimCheckCodec({ thresholdBytes: config.claimBytes, storeName: storeName(config), ownsStore: true, store: open });
}
