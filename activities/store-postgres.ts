/**
 * The production results store: PostgreSQL through a `pg` pool.
 *
 * `INSERT ... ON CONFLICT DO UPDATE` is atomic under concurrency in
 * PostgreSQL, so racing upserts of one key (two workers, a retried activity)
 * still leave one row. Migrations run under a transaction-scoped advisory
 * lock: two workers starting together apply each version once, and
 * `CREATE TABLE IF NOT EXISTS` cannot race on the catalog.
 */
import pg from 'pg';
import type { ResultRecord } from '../src/shared/types.ts';
import { cacheEntryOf, cacheSql, dollarPlaceholders, fromRow, listQuery, loadMigrations, rowValues, upsertSql } from './store.ts';
import type { CacheEntry, ListOptions, ResultStore, Row, SqlValue, UpsertOutcome } from './store.ts';

/** Advisory lock key of the migration runner: any constant shared by all Steadfast processes. */
const MIGRATION_LOCK = 7_312_026_841;

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    const applied = new Set((await client.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const m of loadMigrations()) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING', [m.version, new Date().toISOString()]);
    }
    await client.query('COMMIT');
  } catch (err: unknown) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Opens a pool on `url`, applies pending migrations and returns the store. */
export async function openPostgresStore(url: string, poolSize = 10): Promise<ResultStore> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection (database restart) must not crash the worker;
  // the next query gets a fresh connection or fails and is retried by Temporal.
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
  } catch (err: unknown) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const $ = (i: number): string => `$${i}`;
  // xmax = 0 only for a freshly inserted row: tells an insert from an update in one round trip.
  const upsert = `${upsertSql($)} RETURNING (xmax = 0) AS inserted`;
  const cache = cacheSql($);
  let closed = false;

  return {
    dialect: 'postgres',
    async upsert(rec: ResultRecord): Promise<UpsertOutcome> {
      const r = await pool.query<{ inserted: boolean }>(upsert, rowValues(rec, new Date().toISOString()));
      const row = r.rows[0];
      if (!row) return 'unchanged';
      return row.inserted ? 'inserted' : 'updated';
    },
    async list(batchId: string, opts: ListOptions = {}): Promise<ResultRecord[]> {
      const q = listQuery(batchId, opts, $);
      const r = await pool.query<Row>(q.sql, q.params);
      return r.rows.map(fromRow);
    },
    async count(batchId: string): Promise<number> {
      const r = await pool.query<{ n: string }>('SELECT COUNT(*) AS n FROM results WHERE batch_id = $1', [batchId]);
      return Number(r.rows[0]?.n ?? 0);
    },
    async writeCount(batchId: string, itemId: string): Promise<number | null> {
      const r = await pool.query<{ write_count: number }>('SELECT write_count FROM results WHERE batch_id = $1 AND item_id = $2', [batchId, itemId]);
      return r.rows[0] ? Number(r.rows[0].write_count) : null;
    },
    async rollback(batchId: string, mode: 'mark' | 'delete'): Promise<number> {
      const sql =
        mode === 'delete'
          ? 'DELETE FROM results WHERE batch_id = $1'
          : "UPDATE results SET status = 'rolled_back', write_count = write_count + 1 WHERE batch_id = $1 AND status <> 'rolled_back'";
      return (await pool.query(sql, [batchId])).rowCount ?? 0;
    },
    async putBlob(key: string, payload: Uint8Array): Promise<void> {
      await pool.query('INSERT INTO payload_blobs (blob_key, payload, bytes, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (blob_key) DO NOTHING', [
        key,
        Buffer.from(payload).toString('base64'),
        payload.byteLength,
        new Date().toISOString(),
      ]);
    },
    async getBlob(key: string): Promise<Uint8Array | null> {
      const r = await pool.query<{ payload: string }>('SELECT payload FROM payload_blobs WHERE blob_key = $1', [key]);
      return r.rows[0] ? new Uint8Array(Buffer.from(r.rows[0].payload, 'base64')) : null;
    },
    async execute(sql: string, params: readonly SqlValue[]): Promise<{ rows: Row[]; changes: number }> {
      const r = await pool.query<Row>(dollarPlaceholders(sql), [...params]);
      return { rows: r.rows, changes: r.command === 'SELECT' ? 0 : (r.rowCount ?? 0) };
    },
    async cacheGet(key: string): Promise<CacheEntry | null> {
      return cacheEntryOf((await pool.query<Row>(cache.get, [key])).rows[0]);
    },
    async cachePut(e: CacheEntry): Promise<void> {
      await pool.query(cache.put, [e.key, e.model, e.answer, e.createdAt]);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
