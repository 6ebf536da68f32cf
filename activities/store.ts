/**
 * The results store: one row per (batch id, item id), written by an idempotent
 * upsert. SQLite (node:sqlite, on its own thread) by default, PostgreSQL when
 * `DATABASE_URL` is set.
 *
 * Idempotency: `INSERT ... ON CONFLICT (batch_id, item_id) DO UPDATE ... WHERE`
 * (1) the record's state differs from the stored one (by a hash that leaves
 * out timestamps: a retried, replayed or re-run item writes nothing), and (2)
 * it moves forward: a final status (succeeded, approved, skipped, failed) is
 * never replaced, neither by `awaiting_review` nor by the final status of a
 * later run of the same batch id (a re-run or a reset keeps a human's
 * decision); among `awaiting_review` rows the later `finished_at` wins.
 * The schema lives in `migrations/` and is applied on open, once per version.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ItemStatus, ResultRecord } from '../src/shared/types.ts';
import type { SqliteStoreOptions } from './store-sqlite.ts';

/** Options of {@link ResultStore.list}. */
export interface ListOptions {
  status?: ItemStatus | readonly ItemStatus[];
  /** Keyset paging: only items whose id sorts after this one. */
  afterItemId?: string;
  /** Only this item. */
  itemId?: string;
  limit?: number;
}

/** What an upsert did. */
export type UpsertOutcome = 'inserted' | 'updated' | 'unchanged';

/** Where results live. Implementations: SQLite and PostgreSQL. */
export interface ResultStore {
  readonly dialect: 'sqlite' | 'postgres';
  /** Idempotent upsert by (batchId, itemId); see the module comment for the rules. */
  upsert(rec: ResultRecord): Promise<UpsertOutcome>;
  /** Rows of a batch ordered by item id. */
  list(batchId: string, opts?: ListOptions): Promise<ResultRecord[]>;
  count(batchId: string): Promise<number>;
  /** How often a row was written (1 = once); for tests and post-mortems. */
  writeCount(batchId: string, itemId: string): Promise<number | null>;
  /** Rolls back a cancelled batch's rows: `mark` sets status `rolled_back`, `delete` removes them. Returns the rows touched. */
  rollback(batchId: string, mode: 'mark' | 'delete'): Promise<number>;
  /** Keeps a claim-checked payload under its content key; a key already stored is left as it is. */
  putBlob(key: string, payload: Uint8Array): Promise<void>;
  /** The payload stored under `key`, or null. */
  getBlob(key: string): Promise<Uint8Array | null>;
  /**
   * Runs one statement of the store's other tables (the provider batch tables: activities/provider-batch.ts)
   * with `?` placeholders, rewritten to `$n` on PostgreSQL. Returns the rows and the rows changed.
   */
  execute(sql: string, params: readonly SqlValue[]): Promise<{ rows: Row[]; changes: number }>;
  /** The response cache entry of `key` (activities/cache.ts), or null. */
  cacheGet(key: string): Promise<CacheEntry | null>;
  /** Stores a validated answer under `key`; an entry already there is kept (the first validated answer wins). */
  cachePut(entry: CacheEntry): Promise<void>;
  close(): Promise<void>;
}

/** One row of the response cache: the answer is JSON text, already scrubbed. */
export interface CacheEntry {
  key: string;
  model: string;
  answer: string;
  createdAt: string;
}

/** The cache statements of both dialects (`p(i)` renders a placeholder). */
export function cacheSql(p: (i: number) => string): { get: string; put: string } {
  return {
    get: `SELECT cache_key, model, answer, created_at FROM response_cache WHERE cache_key = ${p(1)}`,
    put: `INSERT INTO response_cache (cache_key, model, answer, created_at) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}) ON CONFLICT (cache_key) DO NOTHING`,
  };
}

/** A cache row as read back. */
export function cacheEntryOf(r: Row | undefined): CacheEntry | null {
  if (!r) return null;
  return { key: String(r['cache_key']), model: String(r['model']), answer: String(r['answer']), createdAt: String(r['created_at']) };
}

/** Options of {@link openStore}. */
export interface StoreOptions {
  /** `postgres://...` or `postgresql://...`; when unset, SQLite at `dbPath`. */
  databaseUrl?: string | undefined;
  dbPath: string;
  /** Lock timeout and retries of the SQLite store (tests shorten them). */
  sqlite?: SqliteStoreOptions;
}

/** Opens the configured store and applies pending migrations. */
export async function openStore(opts: StoreOptions): Promise<ResultStore> {
  if (opts.databaseUrl && /^postgres(ql)?:/i.test(opts.databaseUrl)) {
    const { openPostgresStore } = await import('./store-postgres.ts');
    return openPostgresStore(opts.databaseUrl);
  }
  if (opts.databaseUrl) throw new Error(`DATABASE_URL must be a postgres:// URL; unset it to use the SQLite file ${opts.dbPath}`);
  const { openSqliteStore } = await import('./store-sqlite.ts');
  return openSqliteStore(opts.dbPath, opts.sqlite);
}

/** One migration file. */
export interface Migration {
  version: string;
  sql: string;
}

const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));

/** The migrations in `migrations/`, in version order (`001_...sql`, `002_...sql`). */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: f.replace(/\.sql$/, ''), sql: readFileSync(`${dir}/${f}`, 'utf8') }));
}

/** Rank of a status for the monotonic guard: only `awaiting_review` can be superseded by a final one. */
export function statusRank(status: ItemStatus): number {
  return status === 'awaiting_review' ? 0 : 1;
}

/** Column order of the upsert; `p(i)` renders the i-th (1-based) placeholder of the dialect. */
export const COLUMNS = [
  'batch_id',
  'item_id',
  'status',
  'status_rank',
  'output',
  'provider',
  'model',
  'tier',
  'attempts',
  'input_tokens',
  'output_tokens',
  'cost_usd',
  'truncation',
  'error',
  'review',
  'started_at',
  'finished_at',
  'record_hash',
  // 003_endpoint.sql
  'endpoint_vendor',
  'endpoint_host',
  'simulated',
  // 005_steps.sql
  'steps',
  // 006_response_cache.sql
  'cache_hit',
  'created_at',
  'updated_at',
] as const;

const UPDATED = COLUMNS.filter((c) => !['batch_id', 'item_id', 'created_at'].includes(c));

/** The upsert statement, for `?` (SQLite) or `$n` (PostgreSQL) placeholders. */
export function upsertSql(p: (i: number) => string): string {
  return `INSERT INTO results (${COLUMNS.join(', ')}, write_count)
VALUES (${COLUMNS.map((_, i) => p(i + 1)).join(', ')}, 1)
ON CONFLICT (batch_id, item_id) DO UPDATE SET
  ${UPDATED.map((c) => `${c} = excluded.${c}`).join(',\n  ')},
  write_count = results.write_count + 1
WHERE results.record_hash <> excluded.record_hash
  AND (excluded.status_rank > results.status_rank
    OR (results.status_rank = 0 AND excluded.status_rank = 0 AND excluded.finished_at >= results.finished_at))`;
}

/** Normalises a timestamp so text comparison is chronological. */
function iso(t: string): string {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString();
}

/** The values of {@link COLUMNS} for a record, in order. */
export function rowValues(rec: ResultRecord, now: string): (string | number | null)[] {
  const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
  const body = [
    rec.batchId,
    rec.itemId,
    rec.status,
    statusRank(rec.status),
    json(rec.output),
    rec.provider,
    rec.model,
    rec.tier,
    rec.attempts,
    rec.inputTokens,
    rec.outputTokens,
    rec.costUsd,
    json(rec.truncation),
    json(rec.error),
    json(rec.review ?? null),
    iso(rec.startedAt),
    iso(rec.finishedAt),
  ];
  const ep = rec.endpoint ?? null;
  const endpoint = [ep?.vendor ?? null, ep?.host ?? null, ep ? (ep.simulated ? 1 : 0) : null];
  const cacheHit = rec.cacheHit === undefined ? null : rec.cacheHit ? 1 : 0;
  return [...body, recordHash(rec), ...endpoint, json(rec.steps ?? null), cacheHit, now, now];
}

/**
 * The idempotency hash of a record: its state without timestamps. A re-run of an
 * item (a crash, a reset, a re-delivery) stamps new `startedAt` / `finishedAt` and
 * error `firstAt` / `lastAt`; the same state must still be a no-op, not a write.
 * (Rows stored under the earlier hash, which had the timestamps, are written once
 * more at most, on their next re-delivery.)
 */
export function recordHash(rec: ResultRecord): string {
  const error = rec.error ? { ...rec.error, firstAt: undefined, lastAt: undefined } : null;
  const ep = rec.endpoint;
  const state = [
    rec.batchId,
    rec.itemId,
    rec.status,
    rec.output ?? null,
    rec.provider,
    rec.model,
    rec.tier,
    rec.attempts,
    rec.inputTokens,
    rec.outputTokens,
    rec.costUsd,
    rec.truncation ?? null,
    error,
    ...(ep ? [ep.vendor ?? null, ep.host ?? null, ep.simulated ? 1 : 0] : []),
    // Only multi-step rows have steps: the hash of every other row stays what it was.
    ...(rec.steps ? [rec.steps] : []),
    // Only when set: rows written before the cache keep their hash.
    ...(rec.cacheHit ? ['cache-hit'] : []),
  ];
  return createHash('sha256').update(JSON.stringify(state)).digest('hex');
}

/** A value bound to a statement's placeholder. */
export type SqlValue = string | number | null;

/** `?` placeholders as PostgreSQL's `$1, $2, ...` (the statements of {@link ResultStore.execute} hold no literal `?`). */
export function dollarPlaceholders(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** A stored row as read back (column names), before parsing. */
export type Row = Record<string, unknown>;

/** Parses a row into a {@link ResultRecord}; PostgreSQL returns BIGINT as text, hence `Number`. */
export function fromRow(r: Row): ResultRecord {
  const parse = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : null);
  const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
  const review = parse(r['review']) as ResultRecord['review'];
  const steps = parse(r['steps']) as ResultRecord['steps'];
  return {
    batchId: String(r['batch_id']),
    itemId: String(r['item_id']),
    status: String(r['status']) as ItemStatus,
    output: parse(r['output']),
    provider: (r['provider'] as string | null) ?? null,
    model: (r['model'] as string | null) ?? null,
    tier: r['tier'] === null || r['tier'] === undefined ? null : Number(r['tier']),
    attempts: num(r['attempts']),
    inputTokens: num(r['input_tokens']),
    outputTokens: num(r['output_tokens']),
    costUsd: num(r['cost_usd']),
    truncation: parse(r['truncation']) as ResultRecord['truncation'],
    error: parse(r['error']) as ResultRecord['error'],
    startedAt: String(r['started_at']),
    finishedAt: String(r['finished_at']),
    ...(review ? { review } : {}),
    ...(steps ? { steps } : {}),
    endpoint:
      r['endpoint_vendor'] === null || r['endpoint_vendor'] === undefined
        ? null
        : { vendor: String(r['endpoint_vendor']), host: String(r['endpoint_host'] ?? ''), simulated: Number(r['simulated']) === 1 },
    ...(r['cache_hit'] === null || r['cache_hit'] === undefined ? {} : { cacheHit: Number(r['cache_hit']) === 1 }),
  };
}

/** WHERE clause and parameters of a list query. */
export function listQuery(batchId: string, opts: ListOptions, p: (i: number) => string): { sql: string; params: (string | number)[] } {
  const params: (string | number)[] = [batchId];
  const where = [`batch_id = ${p(1)}`];
  const statuses = opts.status === undefined ? [] : typeof opts.status === 'string' ? [opts.status] : [...opts.status];
  if (statuses.length > 0) {
    where.push(`status IN (${statuses.map((s) => (params.push(s), p(params.length))).join(', ')})`);
  }
  if (opts.itemId !== undefined) where.push(`item_id = ${(params.push(opts.itemId), p(params.length))}`);
  if (opts.afterItemId !== undefined) where.push(`item_id > ${(params.push(opts.afterItemId), p(params.length))}`);
  const limit = opts.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(opts.limit))}` : '';
  return { sql: `SELECT * FROM results WHERE ${where.join(' AND ')} ORDER BY item_id${limit}`, params };
}
