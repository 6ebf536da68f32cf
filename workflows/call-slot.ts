/**
 * Which calls of an item take a slot from the batch beyond the one it was dispatched with.
 *
 * A batch paces the requests to its first tier's key (the shared limiter's permits) and, with
 * adaptive concurrency, bounds the calls in flight. The item's first call is dispatched with
 * both; since {@link LIMITS2_PATCH} its other calls (Temporal's retries of a failed attempt,
 * schema repairs, fallback tiers, the steps after the first) ask the batch for theirs through
 * the `itemCallSlot` Update from the `callLlm` activity, just before they send
 * (workflows/batch-limits.ts answers). A call to another key than the limited one needs no
 * permit: that key's limit is not the batch's to keep.
 */
import { limiterIdOf } from '../src/shared/limiter.ts';
import type { ProviderSpec } from '../src/shared/spec.ts';
import type { ItemInput } from '../src/shared/types.ts';
import type { StepMode } from './item-run.ts';

/** Patch: every call takes its slot, and adaptive concurrency probes by whole calls (workflows/aimd.ts). */
export const LIMITS2_PATCH = 'limits2-v1';

/** Where a call asks for its slot, and whether it needs a limiter permit. */
export interface CallPace {
  /** The batch workflow's id. */
  batch: string;
  permit: boolean;
}

/** True when two tiers call the same key (the same limiter). */
function sameKey(a: ProviderSpec, b: ProviderSpec): boolean {
  return limiterIdOf(a, '') === limiterIdOf(b, '');
}

/** The pacing of a call on `tier`, or null when the batch holds it back in no way. */
export function callPace(input: ItemInput, tier: ProviderSpec, stepMode: StepMode | null): CallPace | null {
  const batch = input.parentWorkflowId;
  // A `mode: batch` tier answers through the provider's Batch API: no request per call to pace.
  if (!batch || tier.mode === 'batch') return null;
  const root = stepMode?.pipeline ?? input.pipeline;
  const limited = root.providers[0]!;
  const permit = limited.rateLimit !== undefined && limited.mode !== 'batch' && sameKey(limited, tier);
  const adaptive = root.batch.adaptiveConcurrency === true;
  return permit || adaptive ? { batch, permit } : null;
}
