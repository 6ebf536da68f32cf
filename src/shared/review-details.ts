/**
 * The reviewDetails answer of an item workflow: its fields, rendered prompt,
 * calls, best output and the schema's complaints, with every secret field value
 * masked and every text bounded, so the answer stays far under Temporal's
 * payload limit and nothing secret reaches the review console.
 * Pure and sandbox-safe: the item workflow builds it in its query handler.
 */
import type { AttemptRecord, ReviewDetails, ReviewRecord } from './messages.ts';
import type { Item, PipelineSpec } from './spec.ts';
import { renderMessages } from './template.ts';
import { tierName } from './tiers.ts';

/** What stands in for a secret field's value. */
export const MASK = '[secret]';
/** Longest text kept per field, message or output; the rest is cut with a marker. */
export const TEXT_LIMIT = 8_000;
/** Calls kept per item (the latest). */
export const ATTEMPT_LIMIT = 30;
/** Longest failure reason kept per call. */
export const REASON_LIMIT = 500;

/** Cuts a text to `limit` characters, marking the cut. */
export function clip(text: string, limit = TEXT_LIMIT): string {
  return text.length <= limit ? text : `${text.slice(0, limit)} [... ${text.length - limit} more characters]`;
}

/** The string values of the item's secret fields (top level), longest first; short ones too, as they are still secret. */
export function secretValues(item: Item, secretFields: readonly string[]): string[] {
  const values = secretFields.map((f) => item[f]).filter((v): v is string | number => (typeof v === 'string' && v.length > 0) || typeof v === 'number');
  return [...new Set(values.map(String))].sort((a, b) => b.length - a.length);
}

/** Replaces every occurrence of a secret value in a text. */
export function maskText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(MASK);
  return out;
}

/** A copy of the item with secret fields masked and long strings clipped. */
export function maskItem(item: Item, secretFields: readonly string[]): Item {
  const secrets = secretValues(item, secretFields);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(item)) {
    if (secretFields.includes(k) && k !== 'id') out[k] = MASK;
    else if (typeof v === 'string') out[k] = clip(maskText(v, secrets));
    else out[k] = maskedJson(v, secrets);
  }
  return out as Item;
}

/** A non-string field with secrets masked; as clipped text when it is long or masking broke its JSON. */
function maskedJson(v: unknown, secrets: readonly string[]): unknown {
  const text = maskText(JSON.stringify(v) ?? 'null', secrets);
  if (text.length > TEXT_LIMIT) return clip(text);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Appends a call to a bounded attempt list (keeps the latest {@link ATTEMPT_LIMIT}). */
export function pushAttempt(list: AttemptRecord[], a: AttemptRecord): number {
  list.push({ ...a, reason: clip(a.reason, REASON_LIMIT) });
  const over = list.length - ATTEMPT_LIMIT;
  if (over > 0) list.splice(0, over);
  return Math.max(over, 0);
}

/** The item state the answer is built from (a subset of the item workflow's state). */
export interface ReviewSource {
  batchId: string;
  item: Item;
  spec: PipelineSpec;
  status: string;
  attempts: AttemptRecord[];
  attemptsDropped: number;
  bestOutput: unknown;
  bestOutputErrors: string[];
  lastError: { type: string; message: string; provider?: string } | null;
  retried: number;
  review: ReviewRecord | null;
}

/** Builds the reviewDetails answer: masked, clipped, bounded. */
export function reviewDetails(src: ReviewSource): ReviewDetails {
  const { spec } = src;
  const secrets = secretValues(src.item, spec.secretFields);
  const mask = (t: string) => clip(maskText(t, secrets));
  const masked = maskItem(src.item, spec.secretFields);
  const best = src.bestOutput === null || src.bestOutput === undefined ? null : typeof src.bestOutput === 'string' ? src.bestOutput : JSON.stringify(src.bestOutput);
  return {
    batchId: src.batchId,
    itemId: src.item.id,
    status: src.status,
    input: masked,
    messages: renderMessages(spec, masked).map((m) => ({ role: m.role, content: mask(m.content) })),
    attempts: src.attempts.map((a) => ({ ...a, reason: clip(maskText(a.reason, secrets), REASON_LIMIT) })),
    attemptsDropped: src.attemptsDropped,
    bestOutput: best === null ? null : mask(best),
    bestOutputErrors: src.bestOutputErrors.slice(0, 20).map((e) => clip(maskText(e, secrets), REASON_LIMIT)),
    lastError: src.lastError
      ? { type: src.lastError.type, message: clip(maskText(src.lastError.message, secrets), REASON_LIMIT), ...(src.lastError.provider ? { provider: src.lastError.provider } : {}) }
      : null,
    output: { format: spec.output.format, ...(spec.output.schema ? { schema: spec.output.schema } : {}) },
    tiers: spec.providers.map((p, i) => ({ name: tierName(p, i), model: p.model })),
    secretFields: [...spec.secretFields],
    retried: src.retried,
    review: src.review ? { ...src.review, note: src.review.note === null ? null : clip(maskText(src.review.note, secrets), REASON_LIMIT) } : null,
  };
}
