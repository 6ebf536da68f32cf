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

  it('counts items awaiting review apart from running, and stops rate and ETA while only reviews are left', () => {
    const items = ['a', 'b', 'c', 'd'].map((id) => ({ id, text: id }));
    const st = new BatchState(initialCarry('b', pipeline, items, undefined, '2026-01-01T00:00:00Z'));
    for (const it of st.takeQueued(4, st.view.pacer)) st.markStarted(it.id);
    st.addPending({ itemId: 'a', errorType: 'AuthFailed', reason: '401', since: '2026-01-01T00:00:01Z' });
    let p = st.progress(Date.parse('2026-01-01T00:01:00Z'));
    expect(p).toMatchObject({ running: 3, awaitingReviewCount: 1, awaitingByType: { AuthFailed: 1 }, queued: 0, waitingOnReviews: false });
    st.applyOutcome(outcome('b'));
    st.applyOutcome(outcome('c'));
    st.addPending({ itemId: 'd', errorType: 'InvalidItem', reason: 'no text', since: '2026-01-01T00:00:02Z' });
    p = st.progress(Date.parse('2026-01-01T00:11:00Z'));
    expect(p).toMatchObject({ running: 0, awaitingReviewCount: 2, awaitingByType: { AuthFailed: 1, InvalidItem: 1 }, waitingOnReviews: true, etaSeconds: null });
    // The rate is measured up to the last finish, not decayed over the 11 minutes of waiting.
    const later = st.progress(Date.parse('2026-01-01T05:00:00Z'));
    expect(later.ratePerMinute).toBe(p.ratePerMinute);
    expect(st.detailsMarkdown(Date.parse('2026-01-01T00:11:00Z'))).toContain('**waiting for 2 reviews** (AuthFailed 1, InvalidItem 1)');
  });
});
