/**
 * Bulk review: items that failed for good for two reasons; `steadfast review
 * skip <batch> --all --error-type AuthFailed` decides one group with one
 * Update and says how many changed; the `reviewMany` Update takes the rest by
 * age. Progress counts waiting items apart from running ones throughout.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressQuery, reviewManyUpdate } from '../../src/shared/messages.ts';
import type { Progress } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';
import { startWebhookSink } from '../support/wait.ts';

const spec: PipelineSpecInput = {
  name: 'bulk',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s' }],
  retry: { maxAttempts: 1, initialInterval: '10ms' },
  review: { timeout: '1h' },
};

describe('bulk review', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());

  const cli = (...args: string[]) => runCli(args, harnessEnv(h));

  it('decides a filtered group with one command, then the rest with one Update; review alerts come as a digest', async () => {
    const hook = await startWebhookSink();
    const { url: webhookUrl, posts } = hook;
    const items = [
      ...Array.from({ length: 4 }, (_, i) => ({ id: `auth${i}`, text: `key revoked [[fault:auth]]` })),
      ...Array.from({ length: 3 }, (_, i) => ({ id: `bad${i}`, text: `refused [[fault:refusal]]` })),
      ...Array.from({ length: 3 }, (_, i) => ({ id: `ok${i}`, text: 'a fine ticket' })),
    ];
    await h.run(async () => {
      const handle = await h.startBatch({ pipeline: { ...spec, alerts: { webhookUrl, reviewDigestInterval: '1h' } }, items }, 'bulk-1');
      let p: Progress = await handle.query(progressQuery);
      for (let i = 0; i < 200 && !p.waitingOnReviews; i++) {
        await new Promise((r) => setTimeout(r, 100));
        p = await handle.query(progressQuery);
      }
      expect(p).toMatchObject({ running: 0, succeeded: 3, awaitingReviewCount: 7, waitingOnReviews: true, etaSeconds: null });
      expect(p.awaitingByType).toEqual({ AuthFailed: 4, ContentRefused: 3 });

      const bad = await cli('review', 'skip', 'bulk-1', '--all', '--since', 'yesterday');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--since yesterday: give an age like 30m, 2h, 1d or an ISO time');
      const both = await cli('review', 'skip', 'bulk-1', 'auth0', '--all');
      expect(both.code).toBe(2);

      const skipped = await cli('review', 'skip', 'bulk-1', '--all', '--error-type', 'AuthFailed', '--note', 'keys rotated');
      expect(skipped.stderr).toBe('');
      expect(skipped.stdout).toBe('4 items of batch bulk-1 skipped (error type AuthFailed); 3 still awaiting review\n');
      expect((await handle.query(progressQuery)).awaitingByType).toEqual({ ContentRefused: 3 });

      // An invalid bulk decision is rejected before it reaches history, and changes nothing.
      await expect(handle.executeUpdate(reviewManyUpdate, { args: [{ decision: 'retry', provider: 'nope' }] })).rejects.toThrow(WorkflowUpdateFailedError);
      const r = await handle.executeUpdate(reviewManyUpdate, { args: [{ decision: 'skip', filter: { since: new Date().toISOString() } }] });
      expect({ ...r, itemIds: [...r.itemIds].sort() }).toEqual({ decided: 3, itemIds: ['bad0', 'bad1', 'bad2'], remaining: 0 });
      const summary = await handle.result();
      expect(summary).toMatchObject({ total: 10, succeeded: 3, skipped: 7 });

      // Each bulk Update answered before its signals went out: the batch loop delivers them,
      // so an Update over 10,000 items does not wait for 10,000 signals.
      const events = (await handle.fetchHistory()).events ?? [];
      const completed = events.flatMap((e, i) => (e.workflowExecutionUpdateCompletedEventAttributes ? [i] : []));
      const signalled = (prefix: string) =>
        events.findIndex((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.workflowExecution?.workflowId?.startsWith(`bulk-1/${prefix}`));
      expect(completed).toHaveLength(2);
      expect(completed[0]).toBeLessThan(signalled('auth'));
      expect(completed[1]).toBeLessThan(signalled('bad'));
    });
    hook.close();
    // 7 items entered review: the first is told at once, the other 6 in one digest (at the end here), not 7 posts.
    const review = posts.map((p) => p.text).filter((t) => t.includes('entered review'));
    expect(review).toEqual([
      expect.stringContaining('1 item of batch bulk-1 entered review ('),
      expect.stringMatching(/6 items of batch bulk-1 entered review \((AuthFailed|ContentRefused) \d, (AuthFailed|ContentRefused) \d\)/),
    ]);
    const rows = await h.store.list('bulk-1', {});
    expect(
      rows
        .filter((x) => x.status === 'skipped')
        .map((x) => x.itemId)
        .sort(),
    ).toEqual(['auth0', 'auth1', 'auth2', 'auth3', 'bad0', 'bad1', 'bad2']);
  });
});
