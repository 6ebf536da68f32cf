/**
 * The embedded results store: a SQLite file through Node's built-in
 * `node:sqlite` (no native addon). WAL lets readers (the CLI exporting) run
 * beside a writer; `busy_timeout` makes several worker processes on one file
 * wait for the lock instead of failing.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { ResultRecord } from '../src/shared/types.ts';
import { fromRow, listQuery, loadMigrations, rowValues, upsertSql } from './store.ts';
import type { ListOptions, ResultStore, Row, UpsertOutcome } from './store.ts';

/** How long a writer waits for another process's lock (ms). */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

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

/** Opens (creating if needed) the SQLite store at `path`; `:memory:` works for tests. */
export function openSqliteStore(path: string): ResultStore {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  db.exec('PRAGMA journal_mode = WAL');
  // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last commits).
  db.exec('PRAGMA synchronous = NORMAL');
  migrate(db);
  const upsert = db.prepare(upsertSql(() => '?'));
  const exists = db.prepare('SELECT write_count FROM results WHERE batch_id = ? AND item_id = ?');
  let closed = false;

  return {
    dialect: 'sqlite',
    async upsert(rec: ResultRecord): Promise<UpsertOutcome> {
      const before = exists.get(rec.batchId, rec.itemId);
      const r = upsert.run(...rowValues(rec, new Date().toISOString()));
      if (Number(r.changes) === 0) return 'unchanged';
      return before ? 'updated' : 'inserted';
    },
    async list(batchId: string, opts: ListOptions = {}): Promise<ResultRecord[]> {
      const q = listQuery(batchId, opts, () => '?');
      return db
        .prepare(q.sql)
        .all(...q.params)
        .map((r) => fromRow(r as Row));
    },
    async count(batchId: string): Promise<number> {
      const r = db.prepare('SELECT COUNT(*) AS n FROM results WHERE batch_id = ?').get(batchId);
      return Number(r?.['n'] ?? 0);
    },
    async writeCount(batchId: string, itemId: string): Promise<number | null> {
      const r = exists.get(batchId, itemId);
      return r ? Number(r['write_count']) : null;
    },
    async rollback(batchId: string, mode: 'mark' | 'delete'): Promise<number> {
      const sql =
        mode === 'delete'
          ? 'DELETE FROM results WHERE batch_id = ?'
          : "UPDATE results SET status = 'rolled_back', write_count = write_count + 1 WHERE batch_id = ? AND status <> 'rolled_back'";
      return Number(db.prepare(sql).run(batchId).changes);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
