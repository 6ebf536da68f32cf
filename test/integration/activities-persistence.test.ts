/**
 * The results store on a real SQLite file and a real PostgreSQL: idempotent
 * upserts, monotonic status, scrubbed secrets, idempotent migrations.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createActivities, openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { COLUMNS, loadMigrations, rowValues } from '../../activities/store.ts';
import type { ResultRecord } from '../../src/shared/types.ts';
import { createTempDatabase, testDatabaseUrl } from '../support/postgres.ts';

const dir = mkdtempSync(join(tmpdir(), 'steadfast-store-'));
const pgUrl = testDatabaseUrl();
const VERSIONS = loadMigrations().map((m) => m.version);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Target {
  name: 'sqlite' | 'postgres';
  skip: boolean;
  /** A store on the shared database of this dialect. */
  open(): Promise<ResultStore>;
  /** A fresh, empty database: `open` stores on it, `migrations()` reads its schema_migrations. */
  fresh(): Promise<{ open(): Promise<ResultStore>; migrations(): Promise<string[]>; exec(sql: string, params?: string[]): Promise<void>; drop(): Promise<void> }>;
}

const sqlitePath = join(dir, 'shared', 'results.db');
const targets: Target[] = [
  {
    name: 'sqlite',
    skip: false,
    open: () => openStore({ dbPath: sqlitePath }),
    async fresh() {
      const path = join(dir, randomUUID(), 'nested', 'results.db');
      return {
        open: () => openStore({ dbPath: path }),
        async migrations() {
          const db = new DatabaseSync(path);
          try {
            return db
              .prepare('SELECT version FROM schema_migrations ORDER BY version')
              .all()
              .map((r) => String(r['version']));
          } finally {
            db.close();
          }
        },
        async exec(sql: string, params: string[] = []) {
          mkdirSync(dirname(path), { recursive: true });
          const db = new DatabaseSync(path);
          try {
            if (params.length === 0) db.exec(sql);
            else db.prepare(sql).run(...params);
          } finally {
            db.close();
          }
        },
        drop: async () => undefined,
      };
    },
  },
  {
    name: 'postgres',
    skip: !pgUrl,
    open: () => openStore({ databaseUrl: pgUrl, dbPath: 'unused' }),
    async fresh() {
      const tmp = await createTempDatabase(pgUrl!);
      return {
        open: () => openStore({ databaseUrl: tmp.url, dbPath: 'unused' }),
        async migrations() {
          const c = new pg.Client({ connectionString: tmp.url });
          await c.connect();
          try {
            return (await c.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
          } finally {
            await c.end();
          }
        },
        async exec(sql: string, params: string[] = []) {
          const c = new pg.Client({ connectionString: tmp.url });
          await c.connect();
          try {
            await c.query(sql, params);
          } finally {
            await c.end();
          }
        },
        drop: () => tmp.drop(),
      };
    },
  },
];

function record(batchId: string, itemId: string, over: Partial<ResultRecord> = {}): ResultRecord {
  return {
    batchId,
    itemId,
    status: 'succeeded',
    output: { label: 'ok', score: 0.9, nested: [1, 'two'] },
    provider: 'primary',
    model: 'gpt-4o-mini',
    tier: 0,
    attempts: 2,
    inputTokens: 120,
    outputTokens: 30,
    costUsd: 0.000036,
    truncation: { originalTokens: 5000, finalTokens: 3000, droppedMessages: 1, trimmedChars: 800 },
    error: null,
    startedAt: '2025-06-01T10:00:00.000Z',
    finishedAt: '2025-06-01T10:00:05.000Z',
    endpoint: { vendor: 'openai', host: 'api.openai.com', simulated: false },
    ...over,
  };
}

const quiet = (): MockActivityEnvironment => new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });

for (const t of targets) {
  describe.skipIf(t.skip)(`results store on ${t.name}`, () => {
    const batch = () => `batch-${randomUUID().slice(0, 8)}`;

    it('stores a record once: a re-delivery changes nothing', async () => {
      const store = await t.open();
      try {
        const b = batch();
        const rec = record(b, 'item-1');
        expect(await store.upsert(rec)).toBe('inserted');
        expect(await store.upsert(rec)).toBe('unchanged');
        expect(await store.upsert({ ...rec })).toBe('unchanged');
        expect(await store.count(b)).toBe(1);
        expect(await store.writeCount(b, 'item-1')).toBe(1);
        expect(await store.list(b)).toEqual([rec]);
        // A re-run of the item (crash, reset) stamps new times on the same state: still no write.
        const rerun = { ...rec, startedAt: '2025-06-01T10:07:00.000Z', finishedAt: '2025-06-01T10:07:09.000Z' };
        expect(await store.upsert(rerun)).toBe('unchanged');
        expect(await store.writeCount(b, 'item-1')).toBe(1);
        const failed = record(b, 'item-2', {
          status: 'awaiting_review',
          error: { type: 'Timeout', message: 't', attempts: 5, provider: 'primary', firstAt: '2025-06-01T10:00:01.000Z', lastAt: '2025-06-01T10:00:04.000Z' },
        });
        expect(await store.upsert(failed)).toBe('inserted');
        expect(
          await store.upsert({
            ...failed,
            finishedAt: '2025-06-01T10:09:00.000Z',
            error: { ...failed.error!, firstAt: '2025-06-01T10:08:00.000Z', lastAt: '2025-06-01T10:08:30.000Z' },
          }),
        ).toBe('unchanged');
        expect(await store.writeCount(b, 'item-2')).toBe(1);
      } finally {
        await store.close();
      }
    });

    it('keeps claim-checked payloads: one row per key, read back byte for byte by another store instance', async () => {
      const a = await t.open();
      const b = await t.open();
      try {
        const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) % 256);
        const key = `k-${randomUUID()}`.padEnd(64, '0');
        await Promise.all([a.putBlob(key, bytes), b.putBlob(key, bytes), a.putBlob(key, bytes)]);
        expect(Buffer.from((await b.getBlob(key))!)).toEqual(Buffer.from(bytes));
        expect(await a.getBlob('f'.repeat(64))).toBeNull();
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('20 concurrent upserts of one key from two store instances leave exactly one row', async () => {
      const [s1, s2] = [await t.open(), await t.open()];
      try {
        const b = batch();
        const rec = record(b, 'hot');
        const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? s1 : s2).upsert(rec)));
        expect(outcomes.filter((o) => o === 'inserted')).toHaveLength(1);
        expect(outcomes.filter((o) => o === 'unchanged')).toHaveLength(19);
        expect(await s1.count(b)).toBe(1);
        expect(await s2.writeCount(b, 'hot')).toBe(1);
        // Concurrent different final records of one key (later runs of the batch id): still one row, the first final one.
        const later = Array.from({ length: 20 }, (_, i) => record(b, 'hot', { attempts: i, finishedAt: new Date(Date.UTC(2025, 5, 2, 0, 0, i)).toISOString() }));
        expect(await Promise.all(later.map((r, i) => (i % 2 ? s1 : s2).upsert(r)))).toEqual(later.map(() => 'unchanged'));
        expect(await s1.count(b)).toBe(1);
        expect(await s2.list(b)).toEqual([rec]);
      } finally {
        await s1.close();
        await s2.close();
      }
    });

    it('moves forward only: a stale awaiting_review never overwrites a final status', async () => {
      const store = await t.open();
      try {
        const b = batch();
        const waiting = record(b, 'i', {
          status: 'awaiting_review',
          output: null,
          error: { type: 'InvalidOutput', message: 'bad', attempts: 3, provider: 'primary', firstAt: '2025-06-01T10:00:01.000Z', lastAt: '2025-06-01T10:00:04.000Z' },
        });
        const approved = record(b, 'i', { status: 'approved', finishedAt: '2025-06-01T11:00:00.000Z' });
        expect(await store.upsert(waiting)).toBe('inserted');
        expect(await store.upsert(approved)).toBe('updated');
        expect(await store.upsert(waiting)).toBe('unchanged');
        // Even a later-stamped awaiting_review cannot undo a final decision.
        expect(await store.upsert({ ...waiting, finishedAt: '2025-06-02T00:00:00.000Z' })).toBe('unchanged');
        const [row] = await store.list(b);
        expect(row?.status).toBe('approved');
        expect(await store.writeCount(b, 'i')).toBe(2);
        // A later run of the batch id (a re-run or reset) cannot replace a human's approval.
        expect(await store.upsert({ ...approved, status: 'succeeded', attempts: 9, finishedAt: '2025-06-03T00:00:00.000Z' })).toBe('unchanged');
        expect((await store.list(b))[0]).toMatchObject({ status: 'approved', attempts: approved.attempts });
        // A retry that fails again after review: a newer awaiting_review replaces an older one.
        const b2 = batch();
        await store.upsert({ ...waiting, batchId: b2 });
        expect(await store.upsert({ ...waiting, batchId: b2, attempts: 6, finishedAt: '2025-06-01T12:00:00.000Z' })).toBe('updated');
        expect(await store.upsert({ ...waiting, batchId: b2, attempts: 1, finishedAt: '2025-06-01T09:00:00.000Z' })).toBe('unchanged');
        expect((await store.list(b2))[0]!.attempts).toBe(6);
      } finally {
        await store.close();
      }
    });

    it('lists by status, pages by item id and counts', async () => {
      const store = await t.open();
      try {
        const b = batch();
        for (const [id, status] of [
          ['c', 'succeeded'],
          ['a', 'awaiting_review'],
          ['b', 'skipped'],
          ['d', 'awaiting_review'],
        ] as const) {
          await store.upsert(record(b, id, { status }));
        }
        expect((await store.list(b)).map((r) => r.itemId)).toEqual(['a', 'b', 'c', 'd']);
        expect((await store.list(b, { status: 'awaiting_review' })).map((r) => r.itemId)).toEqual(['a', 'd']);
        expect((await store.list(b, { status: ['skipped', 'succeeded'] })).map((r) => r.itemId)).toEqual(['b', 'c']);
        expect((await store.list(b, { afterItemId: 'b', limit: 1 })).map((r) => r.itemId)).toEqual(['c']);
        expect(await store.count(b)).toBe(4);
        expect(await store.count('no-such-batch')).toBe(0);
      } finally {
        await store.close();
      }
    });

    it('persistResult scrubs secrets from the stored error and output', async () => {
      const store = await t.open();
      try {
        const key = 'sk-test-0123456789abcdefghijklmnop';
        const acts = createActivities({ store, simulatedProviderUrl: 'http://127.0.0.1:1', env: { OPENAI_API_KEY: key, CRM_TOKEN: 'crm-token-value-77' } });
        const b = batch();
        const error = {
          type: 'AuthFailed',
          message: `401 Incorrect API key provided: ${key}; Authorization: Bearer ${key}; crm-token-value-77; ssn=123-45-6789`,
          attempts: 1,
          provider: 'primary',
          firstAt: '2025-06-01T10:00:00.000Z',
          lastAt: '2025-06-01T10:00:00.000Z',
        };
        await quiet().run(acts.persistResult, { ...record(b, 'x', { status: 'awaiting_review', error, output: { ssn: '123-45-6789', name: 'Ada' } }), secretFields: ['ssn'] });
        await quiet().run(acts.persistResult, { ...record(b, 'x', { status: 'awaiting_review', error, output: { ssn: '123-45-6789', name: 'Ada' } }), secretFields: ['ssn'] });
        const rows: ResultRecord[] = await quiet().run(acts.listResults, b, {});
        expect(rows).toHaveLength(1);
        const stored = JSON.stringify(rows[0]);
        for (const secret of [key, 'sk-test', 'crm-token-value-77', '123-45-6789']) expect(stored).not.toContain(secret);
        expect(rows[0]!.error).toMatchObject({ type: 'AuthFailed', attempts: 1, provider: 'primary', firstAt: '2025-06-01T10:00:00.000Z' });
        expect(rows[0]!.error?.message).toContain('[redacted]');
        expect(rows[0]!.output).toEqual({ ssn: '[redacted]', name: 'Ada' });
        expect(await quiet().run(acts.countResults, b)).toBe(1);
      } finally {
        await store.close();
      }
    });

    it('upgrades a database written before per-step results (004) without losing or rewriting its rows', async () => {
      const db = await t.fresh();
      try {
        // The schema as the previous release left it: migrations 001-004 applied, one row in it.
        await db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
        for (const m of loadMigrations().filter((x) => x.version < '005')) {
          await db.exec(m.sql);
          await db.exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (${t.name === 'sqlite' ? '?, ?' : '$1, $2'})`, [m.version, '2026-01-01T00:00:00Z']);
        }
        const old = record('up', 'old', { endpoint: { vendor: 'openai', host: 'api.openai.com', simulated: false } });
        // The row as the previous release wrote it: every column but steps (005) and cache_hit (006).
        const later: readonly string[] = ['steps', 'cache_hit'];
        const cols = COLUMNS.filter((c) => !later.includes(c));
        const values = rowValues(old, '2026-01-01T00:00:00Z').filter((_, i) => !later.includes(COLUMNS[i]!));
        const ph = (i: number) => (t.name === 'sqlite' ? '?' : `$${i + 1}`);
        await db.exec(
          `INSERT INTO results (${cols.join(', ')}, write_count) VALUES (${cols.map((_, i) => ph(i)).join(', ')}, 1)`,
          values.map((v) => (v === null ? null : String(v))) as string[],
        );
        const store = await db.open();
        try {
          expect(await db.migrations()).toEqual(VERSIONS);
          expect(await store.list('up')).toEqual([old]);
          // The same record again is no write: the idempotency hash of a row without steps did not change.
          expect(await store.upsert(old)).toBe('unchanged');
          expect(await store.writeCount('up', 'old')).toBe(1);
          const steps = [
            {
              name: 'a',
              status: 'succeeded' as const,
              output: { x: 1 },
              tier: 0,
              provider: 'p',
              model: 'm',
              attempts: 1,
              inputTokens: 3,
              outputTokens: 2,
              costUsd: 0,
              truncated: false,
              reviewed: false,
              errorType: null,
            },
          ];
          expect(await store.upsert(record('up', 'multi', { steps }))).toBe('inserted');
          const rows = await store.list('up');
          expect(rows.map((r) => r.itemId)).toEqual(['multi', 'old']);
          expect(rows[1]).not.toHaveProperty('steps');
          expect(rows[0]!.steps).toEqual(steps);
        } finally {
          await store.close();
        }
      } finally {
        await db.drop();
      }
    });

    it('applies migrations once, whatever the number of (concurrent) openers', async () => {
      const db = await t.fresh();
      try {
        const first = await Promise.all([db.open(), db.open(), db.open()]);
        await Promise.all(first.map((s) => s.close()));
        const again = await db.open();
        await again.upsert(record('m', '1'));
        expect(await again.count('m')).toBe(1);
        await again.close();
        expect(await db.migrations()).toEqual(VERSIONS);
        expect(VERSIONS[0]).toBe('001_results');
      } finally {
        await db.drop();
      }
    });
  });
}
