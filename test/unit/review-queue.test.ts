/**
 * The batch's review queue stays small however many items wait: ids, types and
 * short reasons only, so the progress query, the review list and the carry of
 * continue-as-new stay far under Temporal's 2 MB payload limit.
 */
import { describe, expect, it } from 'vitest';
import { PipelineSpec } from '../../src/shared/spec.ts';
import { REVIEW_REASON_CHARS, shortReason } from '../../src/shared/messages.ts';
import { BatchState, REVIEW_REASONS_MAX, initialCarry } from '../../workflows/batch-state.ts';
import type { BatchCarry } from '../../workflows/batch-state.ts';

const pipeline = PipelineSpec.parse({ prompt: { template: '{{text}}' }, providers: [{ kind: 'openai', model: 'gpt-4o-mini' }] });
/** A 3.7 KB HTML 502 page, as a proxy in front of a provider returns it. */
const html502 = (n: number) =>
  `ProviderUnavailable: 502 Bad Gateway: <html><head><title>502 Bad Gateway</title></head><body>${`<p>upstream ${n} closed the connection</p>\n`.repeat(90)}</body></html>`;
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

function waiting(n: number, distinct: number): BatchState {
  const st = new BatchState(initialCarry('b', pipeline, [], undefined, '2026-01-01T00:00:00Z'));
  for (let i = 0; i < n; i++) {
    const id = `item-${String(i).padStart(6, '0')}`;
    st.markStarted(id);
    expect(st.addPending({ itemId: id, errorType: 'ProviderUnavailable', reason: html502(i % distinct), since: new Date(Date.UTC(2026, 0, 1) + i).toISOString() })).toBe(true);
  }
  return st;
}

describe('review queue at scale', () => {
  it('10,000 items awaiting review: progress, review pages and the carry stay small', () => {
    expect(html502(1).length).toBeGreaterThan(3_700);
    const st = waiting(10_000, 10_000);
    const progress = st.progress(Date.parse('2026-01-01T01:00:00Z'));
    expect(progress.awaitingReviewCount).toBe(10_000);
    expect(progress.awaitingReview).toHaveLength(50);
    expect(bytes(progress)).toBeLessThan(16_000);
    expect(progress.awaitingReview[0]!.reason.length).toBeLessThanOrEqual(REVIEW_REASON_CHARS);
    expect(progress.awaitingReview[0]).toMatchObject({ itemId: 'item-000000', errorType: 'ProviderUnavailable', since: '2026-01-01T00:00:00.000Z' });

    // The whole queue in pages of 1,000, each well under the limit.
    const ids: string[] = [];
    for (let offset: number | null = 0; offset !== null;) {
      const page = st.reviewQueuePage(offset, 5_000);
      expect(page.items.length).toBeLessThanOrEqual(1_000);
      expect(bytes(page)).toBeLessThan(300_000);
      ids.push(...page.items.map((p) => p.itemId));
      offset = page.next;
    }
    expect(new Set(ids).size).toBe(10_000);

    // Distinct reasons are bounded: later ones keep their error type only.
    const carry = st.carry();
    expect(carry.reviews.reasons.length).toBeLessThanOrEqual(REVIEW_REASONS_MAX + 1);
    expect(bytes(carry)).toBeLessThan(800_000);

    // Continue-as-new: the next run reads the same queue and a decision still finds its item.
    const next = new BatchState(JSON.parse(JSON.stringify(carry)) as BatchCarry);
    expect(next.pendingCount).toBe(10_000);
    expect(next.isPending('item-009999')).toBe(true);
    next.removePending('item-005000');
    expect(next.pendingCount).toBe(9_999);
    expect(next.inFlight).toBe(1);
    expect(next.reviewQueuePage(0, 1).items[0]!.reason).toBe(shortReason(html502(0)));
  });

  it('one shared reason is kept once for all the items that share it', () => {
    const st = waiting(2_000, 1);
    expect(st.carry().reviews.reasons).toHaveLength(1);
    expect(bytes(st.carry())).toBeLessThan(120_000);
  });

  it('a carry of an older run (full pending reviews) is converted on load', () => {
    const carry = initialCarry('b', pipeline, [], undefined, '2026-01-01T00:00:00Z') as BatchCarry & { pendingReviews?: unknown };
    const old = {
      ...carry,
      running: ['a', 'b'],
      started: 2,
      pendingReviews: [{ itemId: 'a', errorType: 'AuthFailed', reason: 'bad key', since: '2026-01-01T00:00:05.000Z' }],
    } as Partial<BatchCarry>;
    delete old.reviews;
    const st = new BatchState(old as BatchCarry);
    expect(st.isPending('a')).toBe(true);
    expect(st.progress(Date.parse('2026-01-01T00:01:00Z')).awaitingReview).toEqual([
      { itemId: 'a', errorType: 'AuthFailed', reason: 'bad key', since: '2026-01-01T00:00:05.000Z' },
    ]);
    expect(st.carry().pendingReviews).toBeUndefined();
    expect(st.inFlight).toBe(1);
  });

  it('reasons are cut and their whitespace folded', () => {
    expect(shortReason('a\n\n  b')).toBe('a b');
    expect(shortReason('x'.repeat(500))).toHaveLength(REVIEW_REASON_CHARS);
  });

  it('a bulk decision over 10,000 items leaves the queue at once and is delivered in chunks, across continue-as-new', () => {
    const st = waiting(10_000, 3);
    const ids = st.pendingItemIds();
    st.queueDecisions({ decision: 'skip', note: 'bulk' }, [...ids, 'not-waiting']);
    expect(st.pendingCount).toBe(0);
    expect(st.outboxSize).toBe(10_000);
    const first = st.takeOutbox(200);
    expect(first).toHaveLength(200);
    expect(first[0]).toEqual({ itemId: ids[0], decision: { decision: 'skip', note: 'bulk' } });
    // What is not delivered yet travels in the carry: the next run delivers the rest, each once.
    const next = new BatchState(JSON.parse(JSON.stringify(st.carry())) as BatchCarry);
    expect(next.outboxSize).toBe(9_800);
    const rest: string[] = [];
    while (next.outboxSize > 0) rest.push(...next.takeOutbox(200).map((d) => d.itemId));
    expect([...first.map((d) => d.itemId), ...rest]).toEqual(ids);
    expect(next.carry().outbox).toBeUndefined();
  });
});
