/**
 * Slot accounting of the batch: an item whose call succeeded (released) frees
 * its slot but stays running until it reports; items waiting for a human hold
 * no slot; duplicate and unknown reports change nothing.
 */
import { describe, expect, it } from 'vitest';
import { PipelineSpec } from '../../src/shared/spec.ts';
import type { ItemOutcome } from '../../src/shared/types.ts';
import { BatchState, initialCarry } from '../../workflows/batch-state.ts';

const pipeline = PipelineSpec.parse({
  prompt: { template: '{{text}}' },
  providers: [{ kind: 'openai', model: 'gpt-4o-mini' }],
  batch: { concurrency: 3 },
});
const outcome = (itemId: string): ItemOutcome => ({
  itemId,
  status: 'succeeded',
  tier: 0,
  provider: 'p',
  attempts: 1,
  inputTokens: 1,
  outputTokens: 1,
  costUsd: 0,
  truncated: false,
  errorType: null,
  retried: 0,
});

describe('BatchState slots', () => {
  it('frees a slot on release and forgets the item when it reports', () => {
    const st = new BatchState(initialCarry('b', pipeline, [], undefined, '2026-01-01T00:00:00Z'));
    for (const id of ['a', 'b', 'c']) st.markStarted(id);
    expect(st.active).toBe(3);
    expect(st.release('a')).toBe(true);
    expect(st.release('a')).toBe(false); // once
    expect(st.release('zz')).toBe(false); // not ours
    expect(st.active).toBe(2);
    expect(st.inFlight).toBe(3);
    expect(st.view.running).toContain('a');

    expect(st.applyOutcome(outcome('a'))).toBe(true);
    expect(st.view.released).toEqual([]);
    expect(st.active).toBe(2);
    expect(st.inFlight).toBe(2);
    expect(st.applyOutcome(outcome('a'))).toBe(false); // duplicate report
    expect(st.view.counts.succeeded).toBe(1);

    // A report that overtakes the release: the late release is ignored.
    expect(st.applyOutcome(outcome('b'))).toBe(true);
    expect(st.release('b')).toBe(false);
    expect(st.active).toBe(1);
  });

  it('does not release an item that waits for a human twice over', () => {
    const st = new BatchState(initialCarry('b', pipeline, [], undefined, '2026-01-01T00:00:00Z'));
    st.markStarted('x');
    st.addPending({ itemId: 'x', errorType: 'AuthFailed', reason: 'bad key', since: '2026-01-01T00:00:00Z' });
    expect(st.active).toBe(0);
    expect(st.release('x')).toBe(false);
    expect(st.active).toBe(0);
  });
});
