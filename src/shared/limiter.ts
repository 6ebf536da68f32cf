/**
 * The shared rate limiter's identity and messages. One `rateLimiter` workflow per
 * provider key hands out permits to every batch that calls the same provider with
 * the same key, so their combined rate stays under the key's limit.
 *
 * PURE and sandbox-safe: the batch workflow derives the limiter's id here.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RateLimitInfo } from './types.ts';

/** What identifies a provider key without its value: vendor, endpoint host, key variable name, model. */
export interface LimiterKey {
  kind: string;
  model: string;
  baseURL?: string | undefined;
  apiKeyEnv?: string | undefined;
}

/** The key variable a tier reads when it names none (the vendors' SDK defaults). */
const DEFAULT_KEY_ENV: Record<string, string> = { openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY', 'openai-compatible': 'OPENAI_API_KEY' };

/** The host (and port) of a URL, lower-cased; '' when there is none (the vendor's own API). */
export function hostOf(url: string | undefined): string {
  if (!url) return '';
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#]+)/i.exec(url);
  return (m?.[1] ?? url).toLowerCase();
}

/** 32-bit FNV-1a of a string from a seed, as 8 hex digits. */
function fnv1a(s: string, seed: number): string {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * The workflow id of the limiter for a tier: a hash of (kind, host, key variable name,
 * model) and the task queue (the limiter runs on the workers of the batches it serves).
 * Never the key's value: that exists only on the workers. Two tiers that read the same
 * key through different variable names get two limiters.
 */
export function limiterIdOf(k: LimiterKey, taskQueue: string): string {
  const identity = [k.kind, hostOf(k.baseURL), k.apiKeyEnv ?? DEFAULT_KEY_ENV[k.kind] ?? '', k.model, taskQueue].join('\n');
  return `steadfast-limiter-${fnv1a(identity, 0x811c9dc5)}${fnv1a(identity, 0x01000193)}`;
}

/** Batch -> limiter: how many permits the batch could use now, and what it knows of the limits. */
export interface AcquireMessage {
  /** The batch's workflow id: grants are signalled there. */
  client: string;
  /** Permits it could use now beyond those it holds; 0 = none for now. */
  want: number;
  /** Tokens one request is charged (its prompt plus the output reserve), for tokens per minute. */
  tokensPerRequest: number;
  /** The spec's limits for this tier. */
  limit?: RateLimitInfo;
  /** Limits the provider advertised in its headers. */
  learned?: RateLimitInfo;
  /** Permits the batch holds and gives back (it cannot use them now). */
  returned?: number;
  /** Calls the provider answered with a rate-limit or overload since the last message. */
  shed?: number;
  /**
   * The latest send time the batch was granted (epoch ms): a limiter that restarted (its state
   * lost) schedules after it, so the slots the old one handed out are not given out twice.
   */
  lastSlot?: number;
}

export const limiterAcquireSignal = defineSignal<[AcquireMessage]>('limiterAcquire');

/** Batch -> limiter: the batch ended (or was cancelled); it gives back what it holds. */
export const limiterReleaseSignal = defineSignal<[{ client: string; returned: number }]>('limiterRelease');

/**
 * Limiter -> batch: permits, one per LLM request, each the epoch ms at which that request may
 * be sent, and the want the limiter still holds for the batch (the batch corrects its own view).
 */
export const permitsSignal = defineSignal<[{ limiterId: string; slots: number[]; want?: number }]>('limiterPermits');

/** callLlm activity -> batch: the provider answered this attempt with a 429 or an overload. */
export const callShedSignal = defineSignal<[{ itemId: string; type: string }]>('itemCallShed');

/**
 * Activity -> batch: a call of a running item other than the one it was dispatched with (a retry,
 * a schema repair, a fallback tier, a later step) asks for its slot: a permit of the shared
 * limiter when it goes to the batch's rate-limited key (`permit`), and room under the adaptive
 * concurrency limit. The answer is the send time (epoch ms), or null to send now.
 */
export interface CallSlotRequest {
  itemId: string;
  permit: boolean;
}

export interface CallSlot {
  notBefore: number | null;
}

export const callSlotUpdate = defineUpdate<CallSlot, [CallSlotRequest]>('itemCallSlot');

/** What the limiter's `limiterState` query answers. */
export interface LimiterView {
  id: string;
  /** Requests and tokens per minute it paces to now (after the pacing target and any 429 back-off). */
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  /** Multiplier (0.5..1) after 429s reported by the batches; grows back by itself. */
  backoff: number;
  clients: { id: string; want: number; granted: number; tokensPerRequest: number }[];
  granted: number;
  returned: number;
  runs: number;
}

export const limiterStateQuery = defineQuery<LimiterView>('limiterState');

/** The description of each limiter message for the Web UI. */
export const LIMITER_DESCRIPTIONS: Record<string, string> = {
  limiterAcquire: 'Internal (batch -> limiter): permits a batch could use now. Do not send by hand.',
  limiterRelease: 'Internal (batch -> limiter): the batch ended and gives back its permits. Do not send by hand.',
  limiterPermits: 'Internal (limiter -> batch): permits granted. Do not send by hand.',
  itemCallSlot: 'Internal (activity -> batch): a call of a running item asks for its slot (a limiter permit, room under the adaptive limit). Do not send by hand.',
  itemCallShed: 'Internal (activity -> batch): a call was answered with a rate limit or an overload (adaptive concurrency). Do not send by hand.',
  limiterState: 'The limiter: its rates, the batches it serves and what each wants and got.',
};

/** The options of `setHandler` for a limiter message: its description. */
export function limiterDescribed(def: { name: string }): { description: string } {
  return { description: LIMITER_DESCRIPTIONS[def.name] ?? def.name };
}
