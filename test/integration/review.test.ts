/**
 * Human review on the time-skipping test server: items that failed for
 * good wait for a person; one is approved with an output, one retried after the
 * provider healed, one skipped, one left to its review timeout, which costs no
 * real hour. Checked through the progress query, the summary and the store.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { batchPipeline } from '../../workflows/batch.ts';
import { progressQuery, reviewSignal, reviewUpdate } from '../../src/shared/messages.ts';
import { createTimeSkipping } from '../support/timeskip.ts';
import type { TimeSkipping } from '../support/timeskip.ts';

const spec: PipelineSpecInput = {
  name: 'review-test',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  output: {
    format: 'json',
    schema: { type: 'object', properties: { category: { type: 'string', enum: ['billing', 'other'] } }, required: ['category'] },
  },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '2s' }],
  retry: { maxAttempts: 2, initialInterval: '10ms', maxInterval: '10ms' },
  review: { timeout: '1h', defaultDecision: 'skip' },
};

describe('human review', () => {
  let ts: TimeSkipping;
  beforeAll(async () => {
    ts = await createTimeSkipping();
  });
  afterAll(async () => ts?.close());

  it('approves, retries, skips and times out items that failed for good', async () => {
    const { env, provider, store } = ts;
    const worker = await ts.worker('review');
    provider.setModelDown('gpt-4o-mini', true);
    const items = ['a', 'b', 'c', 'd'].map((id) => ({ id, text: `refund for order ${id}` }));

    const summary = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start<typeof batchPipeline>('batchPipeline', {
        taskQueue: 'review',
        workflowId: 'rv',
        args: [{ batchId: 'rv', pipeline: spec, items }],
      });
      let progress = await handle.query(progressQuery);
      for (let i = 0; i < 200 && progress.awaitingReview.length < 4; i++) {
        await new Promise((r) => setTimeout(r, 100));
        progress = await handle.query(progressQuery);
      }
      expect(progress.awaitingReview.map((p) => p.itemId).sort()).toEqual(['a', 'b', 'c', 'd']);
      expect(progress.awaitingReview[0]).toMatchObject({ errorType: 'ProviderUnavailable', reason: expect.stringContaining('503') });
      expect((await store.list('rv', { status: 'awaiting_review' })).length).toBe(4);

      // Rejections are synchronous and clear, and change nothing.
      await expect(handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'a', decision: 'approve', output: { category: 'refund' } }] })).rejects.toThrow(WorkflowUpdateFailedError);
      const rejected = await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'zz', decision: 'skip' }] }).catch((e: unknown) => e as WorkflowUpdateFailedError);
      expect(String((rejected as WorkflowUpdateFailedError).cause?.message)).toContain('"zz" is not in batch rv');
      await handle.signal(reviewSignal, { itemId: 'nope', decision: 'skip' });
      expect((await handle.query(progressQuery)).awaitingReview).toHaveLength(4);

      expect(await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'a', decision: 'approve', output: { category: 'billing' }, note: 'checked by hand' }] })).toEqual({
        accepted: true,
        itemId: 'a',
      });
      provider.setModelDown('gpt-4o-mini', false);
      await handle.executeUpdate(reviewUpdate, { args: [{ itemId: 'b', decision: 'retry', provider: 'primary' }] });
      // On the item workflow itself, the same signal without itemId.
      await env.client.workflow.getHandle('rv/c').signal(reviewSignal, { decision: 'skip' });
      // 'd' gets no decision: the 1 h review timeout skips it (time-skipping, no real hour).
      return handle.result();
    });

    expect(summary).toMatchObject({ total: 4, succeeded: 1, approved: 1, skipped: 2, failed: 0, retried: 1, status: 'completed' });
    const rows = Object.fromEntries((await store.list('rv')).map((r) => [r.itemId, r]));
    expect(rows['a']).toMatchObject({ status: 'approved', output: { category: 'billing' } });
    expect(rows['b']).toMatchObject({ status: 'succeeded', provider: 'primary' });
    expect(rows['c']).toMatchObject({ status: 'skipped', output: null });
    expect(rows['d']).toMatchObject({ status: 'skipped', error: { type: 'ProviderUnavailable' } });
  }, 120_000);
});
