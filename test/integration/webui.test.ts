/**
 * The Temporal Web UI as a person sees it, in a real browser (Debian's Chromium
 * through playwright-core): a dev server with its UI, a batch with an item that
 * waits for review. The item's page shows why it waits and how to decide it;
 * the batch's page shows its progress with reviews apart from running items.
 * With STEADFAST_SCREENSHOTS=1 the screenshots are written to docs/img.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { loadConfig } from '../../src/common/config.ts';
import { devServerArgs } from '../../src/dev/dev-server.ts';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import { startProvider } from '../../src/provider/index.ts';
import type { RunningProvider } from '../../src/provider/index.ts';
import { progressQuery } from '../../src/shared/messages.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { createWorker } from '../../src/worker/worker.ts';
import { haveChromium, launchBrowser } from '../support/browser.ts';

const SHOTS = process.env.STEADFAST_SCREENSHOTS === '1';
const IMG = join(import.meta.dirname, '..', '..', 'docs', 'img');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The visible text of the page and of its frames (the UI renders Markdown details in a sandboxed frame). */
async function visibleText(page: Page): Promise<string> {
  const parts = await Promise.all(
    page.frames().map((f) =>
      f
        .locator('body')
        .innerText()
        .catch(() => ''),
    ),
  );
  return parts.join('\n');
}

/** Waits until the page's visible text matches (Markdown details live in a frame, so locators on the page miss them). */
async function bodyMatches(page: Page, re: RegExp, ms = 30_000, tab?: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (let round = 0; ; round++) {
    const text = await visibleText(page);
    if (re.test(text)) return;
    if (Date.now() > deadline) throw new Error(`the page never showed ${re}; it shows: ${text.slice(0, 2_000)}`);
    await new Promise((r) => setTimeout(r, 500));
    // The UI reads current details once per visit: visit again now and then.
    if (tab && round % 4 === 3) {
      await page.reload();
      await page.getByRole('tab', { name: tab }).click();
    }
  }
}

const spec: PipelineSpecInput = {
  name: 'webui',
  prompt: { template: 'Ticket {{id}}: {{text}}' },
  providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s' }],
  retry: { maxAttempts: 1, initialInterval: '10ms' },
  review: { timeout: '1h', defaultDecision: 'skip' },
};

describe.skipIf(!haveChromium())('Web UI in a real browser', () => {
  let server: ChildProcess;
  let dir: string;
  let address: string;
  let ui: string;
  let provider: RunningProvider;
  let store: ResultStore;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'steadfast-webui-'));
    const [port, uiPort] = [await freePort(), await freePort()];
    address = `127.0.0.1:${port}`;
    ui = `http://127.0.0.1:${uiPort}`;
    server = spawn(temporalCliPath()!, devServerArgs({ port, uiPort, dbFile: join(dir, 't.db'), logLevel: 'error' }), { stdio: 'ignore' });
    for (let i = 0; i < 300; i++) {
      try {
        const c = await Connection.connect({ address, connectTimeout: 500 });
        await c.close();
        if ((await fetch(ui).catch(() => null))?.ok) break;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    provider = await startProvider({ port: 0, profile: 'none', seed: 1, latencyScale: 0 });
    store = await openStore({ dbPath: join(dir, 'r.db') });
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await store?.close();
    await provider?.close();
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows why an item waits for review and how to decide it', async () => {
    const config = loadConfig({
      ...process.env,
      TEMPORAL_ADDRESS: address,
      STEADFAST_TASK_QUEUE: 'webui',
      STEADFAST_DB_PATH: join(dir, 'r.db'),
      STEADFAST_SIMULATED_PROVIDER_URL: provider.url,
      DATABASE_URL: '',
    });
    const connection = await NativeConnection.connect({ address });
    const worker = await createWorker({ connection, config, deps: { store, simulatedProviderUrl: provider.url } });
    const client = new Client({ connection: await Connection.connect({ address }) });
    await worker.runUntil(async () => {
      const handle = await client.workflow.start('batchPipeline', {
        taskQueue: 'webui',
        workflowId: 'tickets',
        args: [
          {
            batchId: 'tickets',
            pipeline: spec,
            items: [
              { id: 't1', text: 'fine' },
              { id: 't2', text: 'revoked key [[fault:auth]]' },
              { id: 't3', text: 'fine' },
            ],
          },
        ],
      });
      for (let i = 0; i < 200 && !(await handle.query(progressQuery)).waitingOnReviews; i++) await new Promise((r) => setTimeout(r, 100));

      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      await page.goto(`${ui}/namespaces/default/workflows/${encodeURIComponent('tickets/t2')}`);
      // The review timer in the timeline carries its summary: why, the default decision and when.
      await page
        .getByText(/waiting for review \(AuthFailed\); default skip at \d{4}-/)
        .first()
        .waitFor({ timeout: 30_000 });
      if (SHOTS) await page.screenshot({ path: join(IMG, 'webui-review-item.png'), fullPage: false });
      // The item's current details (served by a query to the running worker): why and how to decide.
      await page.getByRole('tab', { name: 'User Metadata' }).click();
      await bodyMatches(page, /steadfast review approve tickets t2/, 30_000, 'User Metadata');
      const details = await visibleText(page);
      expect(details).toMatch(/waiting for review \(AuthFailed\); without a decision: skip at/);
      expect(details).toMatch(/why: primary gpt-4o-mini: Incorrect API key provided.*\(HTTP 401/);
      expect(details).toMatch(/temporal workflow signal --workflow-id tickets --name review/);
      if (SHOTS) await page.screenshot({ path: join(IMG, 'webui-review-details.png'), fullPage: false });

      await page.goto(`${ui}/namespaces/default/workflows/tickets`);
      await page.getByRole('tab', { name: 'User Metadata' }).click();
      await bodyMatches(page, /waiting for 1 review \(AuthFailed 1\)/, 30_000, 'User Metadata');
      // The batch's tier chain and review policy, for a batch started without the steadfast CLI too.
      expect(await visibleText(page)).toMatch(/tier chain[\s\S]*primary: openai gpt-4o-mini[\s\S]*waits 1h for a person \(approve, retry or skip\), then skips by default/);
      if (SHOTS) await page.screenshot({ path: join(IMG, 'webui-review-batch.png'), fullPage: false });

      await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent('BatchId="tickets" AND ErrorType="AuthFailed"')}`);
      await bodyMatches(page, /tickets\/t2/);
      expect(await page.getByText('tickets/t1').count()).toBe(0);
      if (SHOTS) await page.screenshot({ path: join(IMG, 'webui-review-search.png'), fullPage: false });
      await page.close();
      await handle.terminate('test done');
    });
    await connection.close();
  }, 120_000);
});
