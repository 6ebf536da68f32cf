/**
 * The PostgreSQL that tests may use: `STEADFAST_TEST_DATABASE_URL`, else the
 * cluster test/global-setup.ts started with scripts/postgres.sh. Locally a
 * missing database skips those tests (`describe.skipIf(!url)`); under CI it
 * fails loudly, so a broken set-up can never pass as "skipped".
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** The test database URL, or undefined when there is none (never undefined under CI). */
export function testDatabaseUrl(): string | undefined {
  let injected = '';
  try {
    injected = inject('databaseUrl');
  } catch {
    // Not under the project's globalSetup (e.g. a single file run with another config).
  }
  const url = process.env['STEADFAST_TEST_DATABASE_URL'] || injected || undefined;
  if (!url && process.env['CI']) {
    throw new Error('CI requires PostgreSQL: set STEADFAST_TEST_DATABASE_URL or make `scripts/postgres.sh start` work');
  }
  return url;
}

/** A fresh, empty database on the same server (for migration tests); `drop()` removes it. */
export async function createTempDatabase(url: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `steadfast_t_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
