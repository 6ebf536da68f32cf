/**
 * Messages and payloads of `mode: batch` tiers: an item's request travels through a
 * provider batch (OpenAI Batch API, Anthropic Message Batches) run by the per-(batch,
 * tier) collector workflow `providerBatch`. Every payload here carries ids and counts
 * only; request bodies and answers live in the results store (`batch_requests`).
 */
import { defineSignal } from '@temporalio/workflow';
import { planSteps } from './pipeline-steps.ts';
import type { PipelineSpec, ProviderSpec } from './spec.ts';
import type { InvalidOutputDetails, LlmRequest, LlmResult } from './types.ts';

/** Workflow type of the collector. */
export const PROVIDER_BATCH_WORKFLOW = 'providerBatch';

/**
 * The collector's workflow id for one tier of one batch (of one step, in a multi-step
 * pipeline: each step has its own chain). A batch id holds no `/`, so this cannot be the
 * id of another batch or of an item (`<batchId>/<itemId>`) of another batch.
 */
export function providerBatchWorkflowId(batchId: string, tier: number, step?: string): string {
  return step === undefined ? `provider-batch/${batchId}/tier${tier}` : `provider-batch/${batchId}/${step}/tier${tier}`;
}

/** The collectors a batch of `spec` may have: one per `mode: batch` tier (per step and tier in a multi-step pipeline). */
export function providerBatchWorkflowIds(batchId: string, spec: PipelineSpec): string[] {
  const ids = (providers: PipelineSpec['providers'], step?: string): string[] =>
    providers.flatMap((p, tier) => (p.mode === 'batch' ? [providerBatchWorkflowId(batchId, tier, step)] : []));
  if (!spec.steps || spec.steps.length === 0) return ids(spec.providers);
  return planSteps(spec).flatMap((s) => ids(s.spec.providers, s.name));
}

/** The Steadfast batch was cancelled: the collector submits nothing more and cancels its provider batches. */
export const cancelProviderBatchesSignal = defineSignal<[{ reason: string }]>('cancelProviderBatches');

/** One staged request joining the collector's open group. */
export interface BatchRequestRef {
  customId: string;
  /** Bytes of the request's line in the provider batch (JSONL line or create-body element). */
  bytes: number;
}

/** enqueueBatchRequest activity → collector: a request was staged and waits for a group. */
export const batchRequestSignal = defineSignal<[BatchRequestRef]>('batchRequest');

/** Collector → item: the provider batch that carried `customId` ended; its result is in the store. */
export const batchResultSignal = defineSignal<[{ customId: string }]>('batchResult');

/**
 * Item → batch: the item waits inside a provider batch (`parked: true`) or no longer does.
 * A parked item holds no concurrency slot and does not count against the in-flight bound:
 * a provider batch is only worth it with many requests in it.
 */
export const itemParkedSignal = defineSignal<[{ itemId: string; parked: boolean }]>('itemParked');

/** Input of the `providerBatch` collector. */
export interface ProviderBatchInput {
  batchId: string;
  tier: number;
  /** The step whose chain the tier belongs to, in a multi-step pipeline. */
  step?: string;
  provider: ProviderSpec;
  /** State carried across continue-as-new. */
  carry?: ProviderBatchCarry;
}

/** A group of requests: open (collecting), then submitted as one provider batch and polled. */
export interface BatchGroup {
  key: string;
  /** Requests assigned to the group in the store, and their bytes. */
  count: number;
  bytes: number;
  /** When the group opened (epoch ms of workflow time). */
  openedAt: number;
  /** Requests signalled but not yet assigned in the store (at most a page). */
  unassigned: BatchRequestRef[];
  /** Set once submitted. */
  providerBatchId?: string;
  /** When to poll next (epoch ms). */
  nextPollAt?: number;
  /** Polls made, for the Web UI. */
  polls?: number;
  /** Set once the provider was asked to cancel the batch (the Steadfast batch was cancelled). */
  cancelRequested?: boolean;
  /** Set once the provider batch ended: members are being told, in custom_id order, after this id. */
  notifiedAfter?: string;
  ended?: boolean;
}

/** The collector's durable state. */
export interface ProviderBatchCarry {
  /** Groups opened so far in this chain: the next group's number. */
  seq: number;
  open: BatchGroup | null;
  submitted: BatchGroup[];
  /** Signals received but not yet taken into a group when the run continued as new. */
  inbox: BatchRequestRef[];
  /** Provider batches that ended, in total. */
  ended: number;
  /** Set once the Steadfast batch was cancelled: why. */
  cancelled?: string;
}

/** Input of `enqueueBatchRequest`: the call as a synchronous one would make it, plus who waits for it. */
export type BatchEnqueueRequest = LlmRequest & {
  /** Call number of this item on batch tiers (1, 2, ...): a repair is a new request. */
  seq: number;
  itemWorkflowId: string;
  itemRunId: string;
};

/** What `readBatchResult` found for one request: a checked answer, or the failure of this tier. */
export type BatchAnswer = { ok: true; result: LlmResult } | { ok: false; type: string; message: string; details?: Partial<InvalidOutputDetails> & Record<string, unknown> };

/** Final state of one request inside a provider batch. */
export type BatchResultStatus = 'succeeded' | 'errored' | 'expired' | 'cancelled' | 'failed';
