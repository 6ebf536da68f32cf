/**
 * The review console end to end, in a real browser (Debian's Chromium through
 * playwright-core) against the run's Temporal dev server, a real worker and our
 * fault-injecting provider: a batch of 20 items that all fail for good is
 * cleared from the page by approve (edited output), retry (edited input, another
 * tier), skip, a decision sent from outside the page (the CLI's Update) that the
 * page picks up without a reload, and a bulk skip over a filtered selection.
 * The rows in the results store are checked afterwards, and no response the
 * page received carries the secret field's value.
 * STEADFAST_SCREENSHOTS=1 writes docs/img/console-*.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConsoleConfig } from '../../src/console/config.ts';
import { startConsole } from '../../src/console/server.ts';
import type { RunningConsole } from '../../src/console/server.ts';
import { progressQuery, reviewUpdate } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { haveChromium, launchBrowser } from '../support/browser.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const CANARY = 'CANARY-tok-5f3a9c1e77';
const SHOTS = process.env.STEADFAST_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs', 'img') : null;

const spec: PipelineSpecInput = {
  name: 'console-e2e',
  prompt: { system: 'Classify support tickets.', template: 'Ticket {{id}} from account {{customerToken}}: {{text}}' },
  output: {
    format: 'json',
    schema: { type: 'object', properties: { category: { type: 'string', enum: ['billing', 'shipping', 'other'] } }, required: ['category'] },
  },
  providers: [
    { name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s' },
    { name: 'backup', kind: 'anthropic', model: 'claude-3-5-haiku-latest', timeout: '5s' },
  ],
  retry: { maxAttempts: 1, initialInterval: '10ms', maxInterval: '10ms' },
  repair: { maxRepairs: 0 },
  circuitBreaker: { failureThreshold: 1000 },
  secretFields: ['customerToken'],
};

/** 20 items that fail for good: 2 invalid outputs, 2 quota errors, 2 refusals, 14 auth errors. */
function items() {
  const make = (id: string, fault: string) => ({ id, text: `order ${id} was charged twice [[fault:${fault}]]`, customerToken: CANARY });
  return [
    make('a1', 'schema_violation'),
    make('a2', 'schema_violation'),
    make('r1', 'insufficient_quota'),
    make('r2', 'insufficient_quota'),
    make('s1', 'refusal'),
    make('s2', 'refusal'),
    ...Array.from({ length: 14 }, (_, i) => make(`b${String(i + 1).padStart(2, '0')}`, 'auth')),
  ];
}

const rows = (page: Page) => page.locator('#queue-body tr[data-item]');

async function waitRows(page: Page, n: number): Promise<void> {
  // Polled through locators: the page's CSP (script-src 'self') forbids string evaluation.
  const deadline = Date.now() + 30_000;
  while ((await rows(page).count()) !== n) {
    if (Date.now() > deadline) throw new Error(`the queue shows ${await rows(page).count()} rows, not ${n}, after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: false });
}

async function openItem(page: Page, itemId: string): Promise<void> {
  await page.locator(`#queue-body tr[data-item="${itemId}"] a.open`).click();
  await page.locator('#item-heading', { hasText: `Item ${itemId}` }).waitFor();
}

describe.runIf(haveChromium())('review console (browser)', () => {
  let h: Harness;
  let browser: Browser;
  let consoleServer: RunningConsole;

  beforeAll(async () => {
    h = await createHarness();
    browser = await launchBrowser();
    consoleServer = await startConsole({ config: h.config, client: h.client, console: loadConsoleConfig({ STEADFAST_CONSOLE_PORT: '0', STEADFAST_CONSOLE_POLL_SECONDS: '1' }) });
  });
  afterAll(async () => {
    await consoleServer?.close();
    await browser?.close();
    await h?.close();
  });

  it('clears a queue of 20 failed items by approve, retry, skip and bulk skip', async () => {
    await h.run(async () => {
      const batch = await h.startBatch({ pipeline: spec, items: items() });
      const batchId = batch.workflowId;
      for (let i = 0; i < 300 && (await batch.query(progressQuery)).awaitingReview.length < 20; i++) await new Promise((r) => setTimeout(r, 100));
      expect((await batch.query(progressQuery)).awaitingReview).toHaveLength(20);

      const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
      const bodies: string[] = [];
      page.on('response', (r) => {
        bodies.push(r.url());
        void r.text().then(
          (t) => bodies.push(t),
          () => undefined,
        );
      });
      page.on('pageerror', (e) => console.log('page error:', e.message));
      await page.goto(consoleServer.url);
      await page.fill('#reviewer', 'Ann Analyst');
      await waitRows(page, 20);
      await page.locator('#batches tr', { hasText: batchId }).waitFor();
      expect(await page.locator('#batches').textContent()).toContain('20 awaiting review');
      await shot(page, 'queue');

      // Approve a1: the item's input (secret masked), prompt, attempts and best output are shown.
      await openItem(page, 'a1');
      const detail = (await page.locator('#detail').textContent()) ?? '';
      expect(detail).toContain('[secret]');
      expect(detail).not.toContain(CANARY);
      expect(detail).toContain('InvalidOutput');
      expect(await page.locator('.attempts tbody tr').count()).toBe(2);
      expect(await page.locator('.attempts tbody tr').first().textContent()).toContain('gpt-4o-mini');
      expect(await page.locator('pre.prompt').last().textContent()).toContain('from account [secret]');
      expect(await page.locator('#detail ul.errors li').count()).toBeGreaterThan(0);
      // An output that breaks the schema: the editor says why, and approving sends nothing.
      await page.fill('#output-editor', '{"category": "refund"}');
      await page.locator('#output-check ul.errors').waitFor();
      expect(await page.locator('#output-check').textContent()).toContain('category');
      await page.locator('#approve-submit').scrollIntoViewIfNeeded();
      await shot(page, 'item');
      await page.click('#approve-submit');
      await page.locator('#decision-result', { hasText: 'Not sent' }).waitFor();
      expect((await batch.query(progressQuery)).awaitingReview).toHaveLength(20);
      await page.fill('#output-editor', '{"category": "billing"}');
      await page.locator('#output-check .ok').waitFor();
      await page.locator('#approve-form input[name=note]').fill('charged twice: billing');
      await page.click('#approve-submit');
      await page.locator('#decision-result', { hasText: 'approve a1: 1 of 1 accepted' }).waitFor();
      await waitRows(page, 19);

      await openItem(page, 'a2');
      await page.fill('#output-editor', '{"category": "shipping"}');
      await page.locator('#output-check .ok').waitFor();
      await page.click('#approve-submit');
      await page.locator('#decision-result', { hasText: 'accepted' }).waitFor();
      await waitRows(page, 18);

      // Retry r1 and r2 with edited text (the fault directive removed) from the backup tier.
      for (const id of ['r1', 'r2']) {
        await openItem(page, id);
        await page.fill('#field-text', `order ${id} was charged twice`);
        await page.selectOption('#retry-tier', 'backup');
        await page.click('#retry-submit');
        await page.locator('#decision-result', { hasText: `retry ${id}: 1 of 1 accepted` }).waitFor();
      }
      await waitRows(page, 16);

      // Skip s1 with a note from the page.
      await openItem(page, 's1');
      await page.fill('#skip-note', 'customer withdrew the ticket');
      await page.click('#skip-submit');
      await page.locator('#decision-result', { hasText: 'accepted' }).waitFor();
      await waitRows(page, 15);

      // s2 is decided elsewhere (the CLI's Update) while the page shows it: the page follows without a reload.
      await openItem(page, 's2');
      await batch.executeUpdate(reviewUpdate, { args: [{ itemId: 's2', decision: 'skip', reviewer: 'cli-user', note: 'from the CLI' }] });
      await page.locator('#item-status', { hasText: 'skipped' }).waitFor({ timeout: 30_000 });
      expect(await page.locator('#item-status').textContent()).toContain('cli-user');
      await waitRows(page, 14);

      // Bulk skip over a filtered selection: the 14 auth failures.
      await page.selectOption('#f-error', 'AuthFailed');
      await waitRows(page, 14);
      expect(await rows(page).allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('AuthFailed')]));
      await page.check('#select-all');
      await page.fill('#bulk-note', 'revoked key, not worth a rerun');
      await shot(page, 'bulk');
      await page.click('#bulk-submit');
      await page.locator('#bulk-result', { hasText: 'bulk skip: 14 of 14 accepted' }).waitFor({ timeout: 30_000 });
      await waitRows(page, 0);
      await page.selectOption('#f-error', '');
      await page.locator('#queue-body td.empty').waitFor();

      const summary = await batch.result();
      expect(summary).toMatchObject({ total: 20, approved: 2, succeeded: 2, skipped: 16, failed: 0, retried: 2 });
      await page.locator('#batches tr', { hasText: batchId }).locator('td', { hasText: 'completed' }).waitFor({ timeout: 30_000 });
      await shot(page, 'done');
      await page.close();

      // The rows: outputs, statuses, and who decided.
      const byId = Object.fromEntries((await h.store.list(batchId)).map((r) => [r.itemId, r]));
      expect(Object.keys(byId)).toHaveLength(20);
      expect(byId['a1']).toMatchObject({
        status: 'approved',
        output: { category: 'billing' },
        review: { decision: 'approve', reviewer: 'Ann Analyst', note: 'charged twice: billing' },
      });
      expect(byId['a2']).toMatchObject({ status: 'approved', output: { category: 'shipping' }, review: { decision: 'approve', reviewer: 'Ann Analyst' } });
      for (const id of ['r1', 'r2']) expect(byId[id]).toMatchObject({ status: 'succeeded', provider: 'backup', tier: 1, review: { decision: 'retry', reviewer: 'Ann Analyst' } });
      expect(byId['s1']).toMatchObject({ status: 'skipped', output: null, review: { decision: 'skip', reviewer: 'Ann Analyst', note: 'customer withdrew the ticket' } });
      expect(byId['s2']).toMatchObject({ status: 'skipped', review: { decision: 'skip', reviewer: 'cli-user', note: 'from the CLI' } });
      for (let i = 1; i <= 14; i++) {
        expect(byId[`b${String(i).padStart(2, '0')}`]).toMatchObject({
          status: 'skipped',
          error: { type: 'AuthFailed' },
          review: { decision: 'skip', reviewer: 'Ann Analyst', note: 'revoked key, not worth a rerun' },
        });
      }
      expect(JSON.stringify(Object.values(byId))).not.toContain(CANARY);
      // Nothing the page received carried the secret field's value.
      await new Promise((r) => setTimeout(r, 200));
      expect(bodies.length).toBeGreaterThan(20);
      expect(bodies.filter((b) => b.includes(CANARY))).toEqual([]);
    });
  }, 240_000);
});
