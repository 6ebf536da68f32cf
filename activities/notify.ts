/**
 * Alerts to a Slack-compatible incoming webhook.
 *
 * The body is `{ text, blocks }`: `text` is what notifications and non-Slack
 * receivers (Mattermost, Discord's /slack endpoint, a test server) show;
 * `blocks` is Slack's richer layout with the alert's fields. The webhook URL
 * holds a token, so it never appears in messages or failures.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../src/shared/failures.ts';
import type { Alert } from '../src/shared/types.ts';
import { MAX_RETRY_DELAY_MS } from '../src/shared/policies.ts';
import { retryDelayFromHeaders } from './retry-after.ts';
import { scrubSecrets } from './scrub.ts';

/** The notify activity's input: an alert and where to send it. */
export type NotifyRequest = Alert & { webhookUrl?: string; webhookUrlEnv?: string };

/** Slack incoming-webhook payload. */
export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

/** How long one POST may take before it counts as failed (ms). */
export const WEBHOOK_TIMEOUT_MS = 10_000;

const TITLES: Record<Alert['kind'], string> = {
  error_rate: 'Error rate above threshold',
  circuit_open: 'Circuit open',
  awaiting_review: 'Items awaiting review',
  batch_paused: 'Batch paused',
  batch_done: 'Batch finished',
  batch_cancelled: 'Batch cancelled',
  budget_warning: 'Budget 80% spent',
  budget_exceeded: 'Budget reached',
};

/** Builds the Slack JSON for an alert (at most 10 fields: Slack's limit per section). */
export function slackMessage(alert: Alert): SlackMessage {
  const title = `[steadfast] ${TITLES[alert.kind]}: batch ${alert.batchId}`;
  const fields = Object.entries(alert.fields ?? {})
    .slice(0, 10)
    .map(([k, v]) => ({ type: 'mrkdwn', text: `*${k}*\n${String(v)}` }));
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: title.slice(0, 150) } },
    { type: 'section', text: { type: 'mrkdwn', text: alert.text.slice(0, 3000) } },
  ];
  if (fields.length > 0) blocks.push({ type: 'section', fields });
  return { text: `${title}\n${alert.text}`, blocks };
}

/** The webhook URL of a request: explicit URL, else the named env var, else the default. */
export function webhookUrlOf(req: NotifyRequest, env: NodeJS.ProcessEnv, fallback: string | undefined): string | undefined {
  return req.webhookUrl || (req.webhookUrlEnv ? env[req.webhookUrlEnv] : undefined) || fallback || undefined;
}

/** Options of {@link postAlert}. */
export interface PostOptions {
  fetch?: typeof fetch;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * POSTs the alert. Any failure (network, timeout, non-2xx) throws a retryable
 * `WebhookFailed`; a 429's Retry-After becomes `nextRetryDelay`. The workflow
 * treats the final failure as non-fatal: an alert never stops a batch.
 */
export async function postAlert(url: string, alert: Alert, opts: PostOptions = {}): Promise<void> {
  const doFetch = opts.fetch ?? fetch;
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? WEBHOOK_TIMEOUT_MS);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const host = safeHost(url);
  if (host === undefined) {
    // A malformed URL will not heal on retry: say so once, and which setting to fix.
    throw ApplicationFailure.create({
      type: FailureType.WebhookFailed,
      message: 'the alert webhook URL is not a valid URL (alerts.webhookUrl / webhookUrlEnv / STEADFAST_WEBHOOK_URL)',
      nonRetryable: true,
    });
  }
  let res: Response;
  try {
    res = await doFetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(slackMessage(alert)), signal });
  } catch (err: unknown) {
    // Cancellation of the activity must propagate as such, not as a webhook failure.
    if (opts.signal?.aborted) throw opts.signal.reason;
    const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw ApplicationFailure.create({ type: FailureType.WebhookFailed, message: scrubSecrets(`webhook ${host} unreachable: ${why}`, [url]), nonRetryable: false });
  }
  const body = await res.text().catch(() => '');
  if (res.ok) return;
  const delay = retryDelayFromHeaders(res.headers, Date.now());
  throw ApplicationFailure.create({
    type: FailureType.WebhookFailed,
    message: scrubSecrets(`webhook ${host} answered ${res.status}: ${body.slice(0, 200)}`, [url]),
    nonRetryable: false,
    details: [{ status: res.status }],
    ...(delay !== undefined && delay > 0 ? { nextRetryDelay: Math.min(delay, MAX_RETRY_DELAY_MS) } : {}),
  });
}

function safeHost(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.host : undefined;
  } catch {
    return undefined;
  }
}
