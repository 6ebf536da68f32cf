/**
 * The SQLite connection's own thread: `node:sqlite` is synchronous, so a write that
 * waits for another process's lock would stop the worker's event loop (workflow
 * tasks, heartbeats and gRPC all time out). Here it blocks only this thread; the
 * worker talks to it by messages (store-sqlite.ts).
 *
 * Requests run one at a time in arrival order, on one connection, as before.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import type { ResultRecord } from '../src/shared/types.ts';
import { cacheEntryOf, cacheSql, fromRow, listQuery, loadMigrations, rowValues, upsertSql } from './store.ts';
import type { CacheEntry, ListOptions, Row, SqlValue, UpsertOutcome } from './store.ts';

/** What the thread is started with. */
export interface SqliteThreadData {
  path: string;
  busyTimeoutMs: number;
}

/** One request to the thread. */
export type SqliteRequest =
  | { id: number; op: 'upsert'; rec: ResultRecord; now: string }
  | { id: number; op: 'list'; batchId: string; opts: ListOptions }
  | { id: number; op: 'count'; batchId: string }
  | { id: number; op: 'writeCount'; batchId: string; itemId: string }
  | { id: number; op: 'rollback'; batchId: string; mode: 'mark' | 'delete' }
  | { id: number; op: 'putBlob'; key: string; payload: Uint8Array; now: string }
  | { id: number; op: 'getBlob'; key: string }
  | { id: number; op: 'execute'; sql: string; params: SqlValue[] }
  | { id: number; op: 'cacheGet'; key: string }
  | { id: number; op: 'cachePut'; entry: CacheEntry }
  | { id: number; op: 'close' };

/** The thread's answer to request `id` (`id` 0: the open itself). */
export type SqliteResponse = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string; code?: string };

/** Applies pending migrations in one IMMEDIATE transaction: concurrent openers queue on the write lock. */
function migrate(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set(
      db
        .prepare('SELECT version FROM schema_migrations')
        .all()
        .map((r) => String(r['version'])),
    );
    for (const m of loadMigrations()) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?) ON CONFLICT (version) DO NOTHING').run(m.version, new Date().toISOString());
    }
    db.exec('COMMIT');
  } catch (err: unknown) {
    db.exec('ROLLBACK');
    throw err;
  }
}

function open(data: SqliteThreadData): (req: SqliteRequest) => unknown {
  if (data.path !== ':memory:') mkdirSync(dirname(data.path), { recursive: true });
  const db = new DatabaseSync(data.path);
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(data.busyTimeoutMs))}`);
    db.exec('PRAGMA journal_mode = WAL');
    // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last commits).
    db.exec('PRAGMA synchronous = NORMAL');
    migrate(db);
  } catch (err: unknown) {
    db.close();
    throw err;
  }
  const upsert = db.prepare(upsertSql(() => '?'));
  const exists = db.prepare('SELECT write_count FROM results WHERE batch_id = ? AND item_id = ?');
  const count = db.prepare('SELECT COUNT(*) AS n FROM results WHERE batch_id = ?');
  const putBlob = db.prepare('INSERT INTO payload_blobs (blob_key, payload, bytes, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (blob_key) DO NOTHING');
  const getBlob = db.prepare('SELECT payload FROM payload_blobs WHERE blob_key = ?');
  const cache = cacheSql(() => '?');
  const cacheGet = db.prepare(cache.get);
  const cachePut = db.prepare(cache.put);
  return (req) => {
    switch (req.op) {
      case 'upsert': {
        const before = exists.get(req.rec.batchId, req.rec.itemId);
        const r = upsert.run(...rowValues(req.rec, req.now));
        const outcome: UpsertOutcome = Number(r.changes) === 0 ? 'unchanged' : before ? 'updated' : 'inserted';
        return outcome;
      }
      case 'list': {
        const q = listQuery(req.batchId, req.opts, () => '?');
        return db
          .prepare(q.sql)
          .all(...q.params)
          .map((r) => fromRow(r as Row));
      }
      case 'count':
        return Number(count.get(req.batchId)?.['n'] ?? 0);
      case 'writeCount': {
        const r = exists.get(req.batchId, req.itemId);
        return r ? Number(r['write_count']) : null;
      }
      case 'rollback': {
        const sql =
          req.mode === 'delete'
            ? 'DELETE FROM results WHERE batch_id = ?'
            : "UPDATE results SET status = 'rolled_back', write_count = write_count + 1 WHERE batch_id = ? AND status <> 'rolled_back'";
        return Number(db.prepare(sql).run(req.batchId).changes);
      }
      case 'putBlob':
        putBlob.run(req.key, Buffer.from(req.payload).toString('base64'), req.payload.byteLength, req.now);
        return null;
      case 'getBlob': {
        const r = getBlob.get(req.key);
        return r ? new Uint8Array(Buffer.from(String(r['payload']), 'base64')) : null;
      }
      case 'execute': {
        const st = db.prepare(req.sql);
        if (/^\s*(SELECT|WITH)\b/i.test(req.sql) || /\bRETURNING\b/i.test(req.sql)) return { rows: st.all(...req.params) as Row[], changes: 0 };
        return { rows: [], changes: Number(st.run(...req.params).changes) };
      }
      case 'cacheGet':
        return cacheEntryOf(cacheGet.get(req.key) as Row | undefined);
      case 'cachePut':
        cachePut.run(req.entry.key, req.entry.model, req.entry.answer, req.entry.createdAt);
        return null;
      case 'close':
        db.close();
        return null;
    }
  };
}

function errorOf(id: number, err: unknown): SqliteResponse {
  const code = (err as { code?: unknown; errstr?: unknown } | null)?.code;
  return { id, ok: false, message: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) };
}

if (parentPort) {
  const port = parentPort;
  let handle: ((req: SqliteRequest) => unknown) | null = null;
  try {
    handle = open(workerData as SqliteThreadData);
    port.postMessage({ id: 0, ok: true, value: null } satisfies SqliteResponse);
  } catch (err: unknown) {
    port.postMessage(errorOf(0, err));
  }
  port.on('message', (req: SqliteRequest) => {
    if (!handle) return void port.postMessage(errorOf(req.id, new Error('the SQLite store did not open')));
    try {
      port.postMessage({ id: req.id, ok: true, value: handle(req) } satisfies SqliteResponse);
    } catch (err: unknown) {
      port.postMessage(errorOf(req.id, err));
    }
    if (req.op === 'close') port.close();
  });
}
