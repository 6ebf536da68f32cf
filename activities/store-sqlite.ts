/**
 * The embedded results store: a SQLite file through Node's built-in `node:sqlite`
 * (no native addon), on its own thread (store-sqlite-thread.ts). `node:sqlite` is
 * synchronous: on the worker's event loop a write waiting for another process's
 * lock froze every workflow task of the worker. Now the event loop only waits for
 * a message.
 *
 * WAL lets readers (the CLI exporting) run beside a writer. A write waits for a lock
 * at most `busyTimeoutMs` (short), is retried a few times with backoff, and then
 * fails; the activity's `StoreUnavailable` is retried by Temporal (PERSIST_RETRY), so
 * a lock held for minutes delays rows but loses none.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { ResultRecord } from '../src/shared/types.ts';
import type { SqliteRequest, SqliteResponse, SqliteThreadData } from './store-sqlite-thread.ts';
import type { CacheEntry, ListOptions, ResultStore, Row, SqlValue, UpsertOutcome } from './store.ts';

/** How long one statement waits for another connection's lock (ms). */
export const SQLITE_BUSY_TIMEOUT_MS = 1_000;

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** @default SQLITE_BUSY_TIMEOUT_MS */
  busyTimeoutMs?: number;
  /** Tries of a statement that found the database locked, before the error is thrown. @default 3 */
  lockedTries?: number;
  /** A request the thread has not answered in this time fails (ms). @default 20000 */
  requestTimeoutMs?: number;
}

const THREAD_URL = new URL('./store-sqlite-thread.ts', import.meta.url);

/** An error from the SQLite thread, with SQLite's code when there is one. */
export class SqliteStoreError extends Error {
  override readonly name = 'SqliteStoreError';
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

const isLocked = (err: unknown): boolean => err instanceof SqliteStoreError && /database is locked|database table is locked|SQLITE_BUSY/i.test(err.message);

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> };
type Body = SqliteRequest extends infer R ? (R extends SqliteRequest ? Omit<R, 'id'> : never) : never;

/** The thread and its in-flight requests; a thread that died is replaced on the next request. */
class SqliteThread {
  private worker: Worker | null = null;
  private opening: Promise<void> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly data: SqliteThreadData;
  private readonly requestTimeoutMs: number;

  constructor(data: SqliteThreadData, requestTimeoutMs: number) {
    this.data = data;
    this.requestTimeoutMs = requestTimeoutMs;
  }

  /** Starts the thread (if none runs) and waits until the database is open and migrated. */
  start(): Promise<void> {
    if (this.worker) return Promise.resolve();
    this.opening ??= new Promise<void>((resolve, reject) => {
      const w = new Worker(THREAD_URL, { workerData: this.data });
      const fail = (err: Error): void => {
        this.worker = null;
        this.opening = null;
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(err);
        }
        this.pending.clear();
        reject(err);
      };
      w.on('message', (m: SqliteResponse) => {
        if (m.id === 0) {
          if (m.ok) {
            this.worker = w;
            this.opening = null;
            w.unref();
            resolve();
          } else {
            void w.terminate();
            fail(new SqliteStoreError(`cannot open SQLite store ${this.data.path}: ${m.message}`, m.code));
          }
          return;
        }
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (this.pending.size === 0) w.unref();
        if (m.ok) p.resolve(m.value);
        else p.reject(new SqliteStoreError(m.message, m.code));
      });
      w.on('error', (err: Error) => fail(new SqliteStoreError(`SQLite thread failed: ${err.message}`)));
      w.on('exit', (code) => {
        if (this.worker === w || this.opening) fail(new SqliteStoreError(`SQLite thread exited (code ${code})`));
      });
    });
    return this.opening;
  }

  async call<T>(body: Body): Promise<T> {
    await this.start();
    const w = this.worker!;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SqliteStoreError(`the SQLite thread did not answer ${body.op} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      // Keep the process alive only while a request is in flight (a CLI that forgets close() still exits).
      w.ref();
      w.postMessage({ ...body, id });
    });
  }

  async close(): Promise<void> {
    if (this.opening) await this.opening.catch(() => undefined);
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    await this.call({ op: 'close' }).catch(() => undefined);
    this.worker = null;
    await Promise.race([exited, sleep(2_000)]);
    await w.terminate().catch(() => undefined);
  }
}

/** Opens (creating if needed) the SQLite store at `path` on its own thread; `:memory:` works for tests. */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<ResultStore> {
  const o = { busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS, lockedTries: 3, requestTimeoutMs: 20_000, ...options };
  const thread = new SqliteThread({ path, busyTimeoutMs: o.busyTimeoutMs }, o.requestTimeoutMs);
  await thread.start();
  let closed = false;
  /** A locked database is retried with backoff here, off the event loop; other errors fail at once. */
  const call = async <T>(body: Body): Promise<T> => {
    if (closed) throw new SqliteStoreError('the SQLite store is closed');
    for (let attempt = 1; ; attempt++) {
      try {
        return await thread.call<T>(body);
      } catch (err: unknown) {
        if (!isLocked(err) || attempt >= o.lockedTries) throw err;
        await sleep(100 * 2 ** (attempt - 1));
      }
    }
  };

  return {
    dialect: 'sqlite',
    upsert: (rec: ResultRecord) => call<UpsertOutcome>({ op: 'upsert', rec, now: new Date().toISOString() }),
    list: (batchId: string, opts: ListOptions = {}) => call<ResultRecord[]>({ op: 'list', batchId, opts }),
    count: (batchId: string) => call<number>({ op: 'count', batchId }),
    writeCount: (batchId: string, itemId: string) => call<number | null>({ op: 'writeCount', batchId, itemId }),
    rollback: (batchId: string, mode: 'mark' | 'delete') => call<number>({ op: 'rollback', batchId, mode }),
    putBlob: (key: string, payload: Uint8Array) => call<void>({ op: 'putBlob', key, payload, now: new Date().toISOString() }),
    getBlob: (key: string) => call<Uint8Array | null>({ op: 'getBlob', key }),
    execute: (sql: string, params: readonly SqlValue[]) => call<{ rows: Row[]; changes: number }>({ op: 'execute', sql, params: [...params] }),
    cacheGet: (key: string) => call<CacheEntry | null>({ op: 'cacheGet', key }),
    cachePut: (entry: CacheEntry) => call<null>({ op: 'cachePut', entry }).then(() => undefined),
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await thread.close();
    },
  };
}
