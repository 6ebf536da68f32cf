/**
 * A batch end to end on the multi-service cluster: four Temporal server
 * processes on PostgreSQL, a real worker, our provider. The workflows' state
 * lives in the cluster's PostgreSQL, and the Web UI's search attributes work.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { clusterPgPort, clusterStatus, writeFigures } from './cluster.ts';

const example = JSON.parse(readFileSync('examples/batch.json', 'utf8')) as BatchInputRaw;

describe('the multi-service cluster', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  it('runs frontend, history, matching and worker as separate processes', async () => {
    const status = await clusterStatus();
    expect(Object.keys(status).sort()).toEqual(['frontend', 'history', 'matching', 'worker']);
    const pids = Object.values(status);
    for (const pid of pids) expect(pid).toBeGreaterThan(0);
    expect(new Set(pids).size).toBe(4);
    const info = await h.client.connection.workflowService.getSystemInfo({});
    expect(info.serverVersion).toBe('1.32.1');
  });

  it('runs a 24-item batch: one row per item, a summary, the history in PostgreSQL', async () => {
    const batchId = `cluster-${Date.now().toString(36)}`;
    const t0 = Date.now();
    // Every item in its own workflow (no fast path), so each is an execution of the cluster's.
    const childPerItem = { ...example, pipeline: { ...example.pipeline, batch: { ...example.pipeline.batch, fastPath: false } } };
    const summary = await h.run(async () => (await h.startBatch(childPerItem, batchId)).result());
    const seconds = (Date.now() - t0) / 1000;
    writeFigures('cluster-batch', { items: summary.total, seconds: Number(seconds.toFixed(1)), clusterStartMs: inject('clusterStartMs') });
    expect(summary).toMatchObject({ batchId, total: 24, succeeded: 24, failed: 0, status: 'completed' });
    const rows = await h.store.list(batchId);
    expect(rows.map((r) => r.itemId).sort()).toEqual(example.items!.map((i) => i.id).sort());
    expect(rows.every((r) => r.status === 'succeeded')).toBe(true);

    // Search attributes registered by the set-up script are upserted and searchable.
    const items: string[] = [];
    for await (const wf of h.client.workflow.list({ query: `BatchId = "${batchId}" AND WorkflowType = "itemPipeline"` })) items.push(wf.workflowId);
    expect(items.length).toBe(24);

    // The executions are rows in the cluster's PostgreSQL, not in a dev server's SQLite.
    const db = new pg.Client({ host: '127.0.0.1', port: clusterPgPort, user: 'steadfast', database: 'temporal' });
    await db.connect();
    try {
      const r = await db.query<{ n: string }>('SELECT COUNT(*) AS n FROM current_executions WHERE workflow_id = $1 OR workflow_id LIKE $2', [batchId, `${batchId}/%`]);
      expect(Number(r.rows[0]!.n)).toBe(25);
    } finally {
      await db.end();
    }
  });
});
