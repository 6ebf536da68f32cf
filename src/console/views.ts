/**
 * The console's HTML, server-rendered with Hono's `html` tagged template (every
 * interpolated value is escaped). htmx (static/htmx.min.js) swaps the fragments
 * in place: the page polls the batch list, the queue and the open item, and a
 * decision's answer triggers a queue refresh, so nothing needs a reload.
 */
import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { ReviewDetails } from '../shared/messages.ts';
import type { BatchRow, DecisionResult, QueueEntry, QueueFilter } from './data.ts';

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** Options of the page shell. */
export interface PageOptions {
  csrfToken: string;
  pollSeconds: number;
  /** Set when an auth proxy names the user: the reviewer field is fixed to it. */
  proxyUser: string | null;
}

/** Age filter choices, in seconds. */
export const AGES: [string, number][] = [
  ['any age', 0],
  ['1 minute or more', 60],
  ['1 hour or more', 3_600],
  ['1 day or more', 86_400],
];

/** "3 min" for a number of seconds. */
export function ago(seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.floor(seconds))} s`;
  if (seconds < 3_600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3_600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

/** The whole page; its fragments load themselves. */
export function page(o: PageOptions): Html {
  const every = `every ${o.pollSeconds}s`;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content='{"includeIndicatorStyles": false, "allowEval": false}' />
        <title>Steadfast review console</title>
        <link rel="stylesheet" href="/static/console.css" />
        <script src="/static/htmx.min.js"></script>
        <script src="/static/console.js"></script>
      </head>
      <body hx-headers="${JSON.stringify({ 'X-CSRF-Token': o.csrfToken })}">
        <a class="skip" href="#queue-heading">Skip to the review queue</a>
        <header>
          <h1>Steadfast review console</h1>
          <div class="who">
            <label for="reviewer">Your name (recorded with each decision)</label>
            ${
              o.proxyUser
                ? html`<input id="reviewer" name="reviewer" value="${o.proxyUser}" readonly aria-describedby="reviewer-hint" /><span id="reviewer-hint" class="hint"
                      >set by your sign-in</span
                    >`
                : html`<input id="reviewer" name="reviewer" autocomplete="name" required maxlength="200" placeholder="e.g. Ann Analyst" />`
            }
          </div>
        </header>
        <main>
          <section class="left" aria-labelledby="batches-heading">
            <h2 id="batches-heading">Batches</h2>
            <div id="batches" hx-get="/fragments/batches" hx-trigger="load, ${every}" hx-include="#queue-form" aria-busy="true">Loading batches...</div>
            <h2 id="queue-heading">Awaiting review</h2>
            <form id="queue-form" hx-post="/bulk" hx-target="#bulk-result" hx-include="#reviewer" aria-labelledby="queue-heading">
              <fieldset class="filters">
                <legend>Filter</legend>
                <label>Batch ${filterSelect('batch', 'f-batch', [['', 'all batches']], '', false)}</label>
                <label>Error type ${filterSelect('errorType', 'f-error', [['', 'all types']], '', false)}</label>
                <label
                  >Waiting
                  ${filterSelect(
                    'minAge',
                    'f-age',
                    AGES.map(([label, sec]) => [String(sec), label]),
                    '0',
                    false,
                  )}</label
                >
              </fieldset>
              <table class="queue">
                <caption class="sr-only">
                  Items awaiting review; select some for a bulk decision
                </caption>
                <thead>
                  <tr>
                    <th scope="col"><input type="checkbox" id="select-all" aria-label="Select every item shown" /></th>
                    <th scope="col">Item</th>
                    <th scope="col">Batch</th>
                    <th scope="col">Error</th>
                    <th scope="col">Waiting</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody
                  id="queue-body"
                  hx-get="/fragments/queue"
                  hx-trigger="load, ${every}, queue-changed from:body"
                  hx-include="#queue-form"
                  hx-target="this"
                  hx-swap="innerHTML"
                  hx-disinherit="*"
                >
                  <tr>
                    <td colspan="6">Loading the queue...</td>
                  </tr>
                </tbody>
              </table>
              <fieldset class="bulk">
                <legend>Bulk decision on the selected items</legend>
                <label
                  >Decision
                  <select name="decision" id="bulk-decision">
                    <option value="skip">skip</option>
                    <option value="approve">approve (best output)</option>
                    <option value="retry">retry</option>
                  </select></label
                >
                <label>Note <input name="note" id="bulk-note" maxlength="2000" /></label>
                <button type="submit" id="bulk-submit">Apply to selected</button>
              </fieldset>
              <div id="bulk-result" role="status" aria-live="polite"></div>
            </form>
          </section>
          <section class="right" aria-label="Item">
            <div id="detail" aria-live="polite"><p class="hint">Choose an item in the queue to see its input, prompt, attempts and output, and to decide.</p></div>
          </section>
        </main>
      </body>
    </html>`;
}

/** A queue filter; replaced whole (out of band) when the choices change, so its selection comes from the server. */
function filterSelect(name: string, id: string, options: [string, string][], selected: string, oob: boolean): Html {
  return html`<select
    name="${name}"
    id="${id}"
    hx-get="/fragments/queue"
    hx-trigger="change"
    hx-target="#queue-body"
    hx-include="#queue-form"
    ${oob ? html`hx-swap-oob="outerHTML"` : ''}
  >
    ${options.map(([value, label]) => html`<option value="${value}" ${value === selected ? 'selected' : ''}>${label}</option>`)}
  </select>`;
}

function progressText(r: BatchRow): string {
  const p = r.progress;
  if (!p) return r.problem ?? '';
  const done = p.succeeded + p.approved + p.failed + p.skipped;
  return `${done} of ${p.total ?? '?'} done (${p.succeeded} succeeded, ${p.approved} approved, ${p.skipped} skipped, ${p.failed} failed), ${p.running} running, ${p.awaitingReviewCount} awaiting review, ${p.ratePerMinute}/min${p.paused ? `; paused: ${p.pausedReason ?? ''}` : ''}`;
}

/** The batch table, and out-of-band updates of the filter choices. */
export function batchesFragment(rows: BatchRow[], queue: QueueEntry[], filter: QueueFilter): Html {
  const errorTypes = [...new Set(queue.map((e) => e.errorType))].sort();
  if (filter.errorType && !errorTypes.includes(filter.errorType)) errorTypes.push(filter.errorType);
  const batchIds = rows.filter((r) => r.status === 'RUNNING').map((r) => r.batchId);
  if (filter.batchId && !batchIds.includes(filter.batchId)) batchIds.push(filter.batchId);
  return html`${
    rows.length === 0
      ? html`<p>No batches on this task queue yet.</p>`
      : html`<table class="batches">
          <thead>
            <tr>
              <th scope="col">Batch</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
            </tr>
          </thead>
          <tbody>
            ${rows.map((r) => {
              const p = r.progress;
              const done = p ? p.succeeded + p.approved + p.failed + p.skipped : 0;
              return html`<tr data-batch="${r.batchId}">
                <th scope="row">${r.batchId}</th>
                <td>${r.status.toLowerCase()}</td>
                <td>
                  ${p && p.total ? html`<progress max="${p.total}" value="${done}" aria-label="${`${r.batchId}: ${done} of ${p.total}`}"></progress>` : ''}
                  <span class="progress-text">${progressText(r)}</span>
                </td>
              </tr>`;
            })}
          </tbody>
        </table>`
  }
  ${filterSelect('batch', 'f-batch', [['', 'all batches'], ...batchIds.map((b): [string, string] => [b, b])], filter.batchId ?? '', true)}
  ${filterSelect('errorType', 'f-error', [['', 'all types'], ...errorTypes.map((t): [string, string] => [t, t])], filter.errorType ?? '', true)}`;
}

/** A checkbox value and element id for a queue entry. */
export function entryKey(e: { batchId: string; itemId: string }): string {
  return `${e.batchId}/${e.itemId}`;
}

function domId(key: string): string {
  return `sel-${Buffer.from(key).toString('base64url')}`;
}

/** The queue's rows; selected entries stay selected across refreshes. */
export function queueFragment(entries: QueueEntry[], selected: Set<string>, now: number): Html {
  if (entries.length === 0)
    return html`<tr>
      <td colspan="6" class="empty">Nothing awaits review${selected.size ? '' : ''}.</td>
    </tr>`;
  return html`${entries.map((e) => {
    const key = entryKey(e);
    const q = new URLSearchParams({ batch: e.batchId, item: e.itemId }).toString();
    return html`<tr data-item="${e.itemId}">
      <td><input type="checkbox" class="sel" name="sel" value="${key}" id="${domId(key)}" aria-label="${`Select ${e.itemId}`}" ${selected.has(key) ? 'checked' : ''} /></td>
      <td><a href="#detail" class="open" hx-get="/fragments/item?${q}" hx-target="#detail" hx-swap="innerHTML">${e.itemId}</a></td>
      <td>${e.batchId}</td>
      <td>${e.errorType}${e.step !== undefined ? html` <span class="muted">at step ${e.step}</span>` : ''}</td>
      <td>${ago((now - Date.parse(e.since)) / 1_000)}</td>
      <td class="reason" title="${e.reason}">${e.reason.length > 120 ? `${e.reason.slice(0, 120)}...` : e.reason}</td>
    </tr>`;
  })}`;
}

function pretty(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

/** The best output as an editor starts from it: pretty JSON when it parses, the text otherwise. */
export function editorStart(d: ReviewDetails): string {
  if (d.bestOutput === null) return '';
  try {
    return JSON.stringify(JSON.parse(d.bestOutput), null, 2);
  } catch {
    return d.bestOutput;
  }
}

/** The status line of an open item, polled while it is shown. */
export function itemStatusFragment(d: ReviewDetails, q: string, pollSeconds: number): Html {
  const waiting = d.status === 'awaiting_review';
  const r = d.review;
  return html`<p id="item-status" class="status ${waiting ? 'waiting' : 'moved'}" hx-get="/fragments/item-status?${q}" hx-trigger="every ${pollSeconds}s" hx-swap="outerHTML">
    Status: <strong>${d.status.replace('_', ' ')}</strong>${
      r ? html`; last decision <strong>${r.decision}</strong> by ${r.reviewer ?? 'nobody (timeout)'} at ${r.at}${r.note ? html` (note: ${r.note})` : ''}` : ''
    }${waiting ? '' : html`. This item no longer awaits review.`}
  </p>`;
}

/** A multi-step item: the step it waits at (decisions apply to it) and the outputs of the steps before. */
function stepFragment(st: NonNullable<ReviewDetails['step']>): Html {
  return html`<p class="step">
      Waits at step <strong>${st.name}</strong> (${st.index + 1} of ${st.of}): approve supplies this step's output, retry reruns this step with the earlier outputs kept.
    </p>
    ${
      st.earlier.length
        ? html`<details>
            <summary><h3>Earlier steps</h3></summary>
            <dl class="fields">
              ${st.earlier.map(
                (e) =>
                  html`<dt>${e.name} <span class="badge">${e.status}</span></dt>
                    <dd><pre>${e.output ?? ''}</pre></dd>`,
              )}
            </dl>
          </details>`
        : ''
    }`;
}

/** One item: input, prompt, attempts, best output with the schema's errors, and the three decisions. */
export function itemFragment(d: ReviewDetails, pollSeconds: number): Html {
  const q = new URLSearchParams({ batch: d.batchId, item: d.itemId }).toString();
  const fields = Object.entries(d.input).filter(([k]) => k !== 'id');
  const start = editorStart(d);
  const hidden = html`<input type="hidden" name="batch" value="${d.batchId}" /><input type="hidden" name="item" value="${d.itemId}" />`;
  return html`<article aria-labelledby="item-heading">
    <h2 id="item-heading">Item ${d.itemId} <span class="muted">of batch ${d.batchId}</span></h2>
    ${itemStatusFragment(d, q, pollSeconds)}
    ${d.lastError ? html`<p class="error"><strong>${d.lastError.type}</strong>${d.lastError.provider ? ` on ${d.lastError.provider}` : ''}: ${d.lastError.message}</p>` : ''}
    ${d.step ? stepFragment(d.step) : ''}
    <details open>
      <summary><h3>Input fields</h3></summary>
      <dl class="fields">
        ${fields.map(
          ([k, v]) =>
            html`<dt>${k}${d.secretFields.includes(k) ? html` <span class="badge">secret</span>` : ''}</dt>
              <dd><pre>${pretty(v)}</pre></dd>`,
        )}
      </dl>
    </details>
    <details>
      <summary><h3>Rendered prompt</h3></summary>
      ${d.messages.map(
        (m) =>
          html`<p class="role">${m.role}</p>
            <pre class="prompt">${m.content}</pre>`,
      )}
    </details>
    <details open>
      <summary><h3>Attempts (${d.attempts.length + d.attemptsDropped})</h3></summary>
      <table class="attempts">
        <thead>
          <tr>
            <th scope="col">Tier</th>
            <th scope="col">Model</th>
            <th scope="col">Outcome</th>
            <th scope="col">Reason</th>
            <th scope="col">Cost (USD)</th>
          </tr>
        </thead>
        <tbody>
          ${d.attempts.map(
            (a) =>
              html`<tr>
                <td>${a.tierName}</td>
                <td>${a.model}</td>
                <td>${a.outcome}</td>
                <td>${a.reason}</td>
                <td>${a.costUsd.toFixed(6)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      ${d.attemptsDropped ? html`<p class="hint">${d.attemptsDropped} earlier calls are not shown.</p>` : ''}
    </details>
    <details open>
      <summary><h3>Best output the model gave</h3></summary>
      ${d.bestOutput === null ? html`<p class="hint">The model gave no output.</p>` : html`<pre class="best">${d.bestOutput}</pre>`}
      ${
        d.bestOutputErrors.length
          ? html`<p>The schema's complaints:</p>
              <ul class="errors">
                ${d.bestOutputErrors.map((e) => html`<li>${e}</li>`)}
              </ul>`
          : ''
      }
    </details>

    <h3>Decide</h3>
    <div id="decision-result" role="status" aria-live="polite"></div>
    <form class="decide" id="approve-form" hx-post="/decide/approve" hx-target="#decision-result" hx-include="#reviewer">
      ${hidden}
      <fieldset>
        <legend>Approve</legend>
        <label for="output-editor">Output to accept (${d.output.format === 'json' ? "JSON, checked against the batch's output schema" : 'text'})</label>
        <textarea
          id="output-editor"
          name="output"
          rows="8"
          spellcheck="false"
          aria-describedby="output-check"
          hx-post="/validate"
          hx-trigger="input changed delay:300ms, load"
          hx-target="#output-check"
          hx-include="#approve-form"
        >
${start}</textarea>
        <div id="output-check" role="status" aria-live="polite"></div>
        ${
          d.output.schema
            ? html`<details>
                <summary>Output schema</summary>
                <pre>${JSON.stringify(d.output.schema, null, 2)}</pre>
              </details>`
            : ''
        }
        <label>Note <input name="note" maxlength="2000" /></label>
        <button type="submit" id="approve-submit">Approve with this output</button>
      </fieldset>
    </form>
    <form class="decide" id="retry-form" hx-post="/decide/retry" hx-target="#decision-result" hx-include="#reviewer">
      ${hidden}
      <fieldset>
        <legend>Retry</legend>
        ${fields.map(([k, v]) =>
          d.secretFields.includes(k)
            ? html`<p class="hint">${k}: secret, kept as it is</p>`
            : html`<label for="${`field-${k}`}">${k}${typeof v === 'string' ? '' : ' (JSON)'}</label
                ><textarea id="${`field-${k}`}" name="${`field.${k}`}" rows="3" spellcheck="false">${pretty(v)}</textarea>`,
        )}
        <label
          >Start from tier
          <select name="provider" id="retry-tier">
            <option value="">the first tier</option>
            ${d.tiers.map((t) => html`<option value="${t.name}">${t.name} (${t.model})</option>`)}
          </select></label
        >
        <label>Note <input name="note" maxlength="2000" /></label>
        <button type="submit" id="retry-submit">Retry with these fields</button>
      </fieldset>
    </form>
    <form class="decide" id="skip-form" hx-post="/decide/skip" hx-target="#decision-result" hx-include="#reviewer">
      ${hidden}
      <fieldset>
        <legend>Skip</legend>
        <label for="skip-note">Note (why it is given up)</label>
        <input id="skip-note" name="note" maxlength="2000" />
        <button type="submit" id="skip-submit">Skip this item</button>
      </fieldset>
    </form>
  </article>`;
}

/** The schema check of the editor's text. */
export function validationFragment(errors: string[] | null): Html {
  if (errors === null) return html`<p class="hint">Empty: approving accepts the best output as it is.</p>`;
  if (errors.length === 0) return html`<p class="ok">Valid against the output schema.</p>`;
  return html`<ul class="errors" aria-label="Schema errors">
    ${errors.map((e) => html`<li>${e}</li>`)}
  </ul>`;
}

/** The answer to one or many decisions. */
export function resultsFragment(results: DecisionResult[], what: string): Html {
  const ok = results.filter((r) => r.ok).length;
  return html`<p class="${ok === results.length ? 'ok' : 'error'}">${what}: ${ok} of ${results.length} accepted.</p>
    ${
      results.some((r) => !r.ok)
        ? html`<ul class="errors">
            ${results.filter((r): r is Extract<DecisionResult, { ok: false }> => !r.ok).map((r) => html`<li>${r.itemId}: ${r.message}</li>`)}
          </ul>`
        : ''
    }`;
}

/** A problem with the request itself (nothing was sent). */
export function problemFragment(message: string): Html {
  return html`<p class="error" role="alert">${message}</p>`;
}
