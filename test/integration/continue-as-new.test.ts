/**
 * Scale mechanics: items read from a JSONL file by reference, a
 * batch that continues as new several times (the test server suggests it at
 * 300 events) and keeps its id, counts, circuit state and pending reviews
 * across runs; alerts reach a Slack-compatible webhook.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { progressQuery, reviewUpdate } from '../../src/shared/messages.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const N = 240;
const spec = (webhookUrl: string): PipelineSpecInput => ({
  name: 'can-test',
  prompt: { template: 'Classify ticket {{id}}: {{text}}' },
  output: { format: 'json', schema: { type: 'object', properties: { label: { type: 'string' } }, required: ['label'] } },
  providers: [
    { name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '1s' },
    { name: 'secondary', kind: 'anthropic', model: 'claude-haiku-4-5', timeout: '1s' },
  ],
  retry: { maxAttempts: 2, initialInterval: '20ms', maxInterval: '20ms' },
  batch: { concurrency: 20 },
  circuitBreaker: { failureThreshold: 3, cooldown: '30m' },
  alerts: { webhookUrl },
});

describe('continue-as-new', () => {
  let h: Harness;
  let dir: string;
  let hook: Server;
  const alerts: { text: string }[] = [];
  beforeAll(async () => {
    h = await createHarness();
    dir = mkdtempSync(join(tmpdir(), 'steadfast-can-'));
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        alerts.push(JSON.parse(body) as { text: string });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    await h?.close();
    hook?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps its id, counts, open circuit and pending reviews across runs', async () => {
    const path = join(dir, 'items.jsonl');
    const lines = Array.from({ length: N }, (_, i) => {
      // Two items fail on every tier for good (a permanent auth fault), so they wait for review.
      const fault = i === 7 || i === 150 ? ' [[fault:auth]]' : '';
      return JSON.stringify({ id: `x${i}`, text: `printer ${i} is jammed${fault}` });
    });
    lines.splice(100, 0, '{"id": "broken", "text": '); // a bad line: it becomes an item that waits for review
    writeFileSync(path, lines.join('\n') + '\n');
    h.provider.setModelDown('gpt-4o-mini', true);
    const port = (hook.address() as { port: number }).port;

    const { summary, runs } = await h.run(async () => {
      const handle = await h.startBatch({ pipeline: spec(`http://127.0.0.1:${port}/hook`), source: { jsonl: path } }, 'can-1');
      let p = await handle.query(progressQuery);
      for (let i = 0; i < 600 && !(p.started === N + 1 && p.awaitingReviewCount === 3 && p.running === 0 && p.runs > 1); i++) {
        await new Promise((r) => setTimeout(r, 200));
        p = await handle.query(progressQuery);
      }
      // After at least one continue-as-new: the same batch, all counts kept, the circuit still open.
      expect(p.runs).toBeGreaterThan(1);
      expect(p.batchId).toBe('can-1');
      expect(p.total).toBe(N + 1);
      expect(p.succeeded).toBe(N - 2);
      expect(p.circuits['primary']?.state).toBe('open');
      const pending = p.awaitingReview.map((r) => r.itemId).sort();
      expect(pending).toEqual(['line-101', 'x150', 'x7']);
      expect(p.awaitingReview.find((r) => r.itemId === 'line-101')?.reason).toContain('line 101: not valid JSON');
      for (const itemId of pending) await handle.executeUpdate(reviewUpdate, { args: [{ itemId, decision: 'skip' }] });
      const result = await handle.result();
      return { summary: result, runs: (await handle.query(progressQuery)).runs };
    });

    expect(runs).toBeGreaterThan(2);
    expect(summary).toMatchObject({ batchId: 'can-1', total: N + 1, succeeded: N - 2, skipped: 3, failed: 0 });
    expect(summary.tierUse).toEqual({ primary: 0, secondary: N - 2 });
    expect(await h.store.count('can-1')).toBe(N + 1);
    const kinds = alerts.map((a) => a.text);
    expect(kinds.some((t) => t.includes('Circuit open'))).toBe(true);
    expect(kinds.some((t) => t.includes('awaiting review'))).toBe(true);
  }, 240_000);
});
