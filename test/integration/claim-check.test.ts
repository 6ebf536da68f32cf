/**
 * Large documents and answers travel by claim check: a 5 MB document in a source
 * runs (truncated to the model's window) beside small ones, a 2.5 MB answer is
 * stored whole, and no event of any history carries a payload near Temporal's limit.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import proto from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConsoleConfig } from '../../src/console/config.ts';
import { startConsole } from '../../src/console/server.ts';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const MB = 1024 * 1024;

/** The largest event (encoded) of each workflow's history, by workflow id. */
async function largestEvents(client: Client, workflowIds: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const workflowId of workflowIds) {
    let max = 0;
    let nextPageToken: Uint8Array | undefined;
    do {
      const r = await client.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId }, ...(nextPageToken ? { nextPageToken } : {}) });
      for (const e of r.history?.events ?? []) max = Math.max(max, proto.temporal.api.history.v1.HistoryEvent.encode(e).finish().byteLength);
      nextPageToken = r.nextPageToken && r.nextPageToken.length > 0 ? r.nextPageToken : undefined;
    } while (nextPageToken);
    out.set(workflowId, max);
  }
  return out;
}

/** An OpenAI-compatible server whose every answer is `size` bytes of text. */
function bigAnswers(size: number) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({
        id: 'chatcmpl-1',
        object: 'chat.completion',
        created: 1_750_000_000,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: 'a'.repeat(size), refusal: null }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 20, completion_tokens: 600_000, total_tokens: 600_020 },
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
  });
  return {
    start: async () => {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

let h: Harness;
const answers = bigAnswers(2.5 * MB);
let answersUrl = '';
beforeAll(async () => {
  answersUrl = await answers.start();
  h = await createHarness({ deps: { maxAnswerBytes: 4 * MB } });
});
afterAll(async () => {
  await h?.close();
  await answers.close();
});

describe('claim check', () => {
  it('runs a 5 MB document among small ones by reference, and keeps every history event small', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sf-claims-'));
    const jsonl = join(dir, 'docs.jsonl');
    const docs = [
      { id: 'd1', text: 'a short note' },
      { id: 'd2', text: `Quarterly report. ${'Revenue grew in every region. '.repeat((5 * MB) / 30)}` },
      { id: 'd3', text: 'another short note' },
    ];
    writeFileSync(jsonl, docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
    const pipeline: PipelineSpecInput = {
      name: 'claims',
      prompt: { template: 'Summarise: {{text}}' },
      output: { format: 'text' },
      providers: [{ kind: 'openai', model: 'gpt-4o-mini', timeout: '20s' }],
      retry: { maxAttempts: 2, initialInterval: '100ms' },
    };
    const { summary, batchId } = await h.run(async () => {
      const handle = await h.startBatch({ pipeline, source: { jsonl } });
      return { summary: await handle.result(), batchId: handle.workflowId };
    });
    expect(summary).toMatchObject({ total: 3, succeeded: 3, status: 'completed' });
    const rows = await h.store.list(batchId);
    expect(rows.map((r) => [r.itemId, r.status])).toEqual([
      ['d1', 'succeeded'],
      ['d2', 'succeeded'],
      ['d3', 'succeeded'],
    ]);
    // The big document was cut to the model's window, not refused.
    expect(rows[1]!.truncation).not.toBeNull();
    const sizes = await largestEvents(h.client, [batchId, `${batchId}/d1`, `${batchId}/d2`, `${batchId}/d3`]);
    for (const [id, bytes] of sizes) expect(bytes, `largest event of ${id}`).toBeLessThan(h.config.claimBytes + 16 * 1024);

    // The console decodes claims for the Temporal CLI and Web UI (the codec server protocol).
    const consoleServer = await startConsole({ config: h.config, console: loadConsoleConfig({ STEADFAST_CONSOLE_PORT: '0' }) });
    try {
      // Not execFileSync: the console answering the CLI runs on this event loop.
      const show = async (...extra: string[]) =>
        (
          await promisify(execFile)(temporalCliPath()!, ['workflow', 'show', '--address', h.address, '--workflow-id', `${batchId}/d2`, '--output', 'json', ...extra], {
            encoding: 'utf8',
            maxBuffer: 256 * 1024 * 1024,
          })
        ).stdout;
      const plain = await show();
      expect(plain).not.toContain('Revenue grew in every region');
      expect(plain).toContain('YmluYXJ5L3N0ZWFkZmFzdC1jbGFpbQ'); // base64 of binary/steadfast-claim
      // Decoded: no claim left, and the 5 MB document is back in the history (base64 in proto JSON).
      const decoded = await show('--codec-endpoint', `${consoleServer.url}/codec`);
      expect(decoded).not.toContain('YmluYXJ5L3N0ZWFkZmFzdC1jbGFpbQ');
      expect(decoded.length).toBeGreaterThan(5 * MB);
      expect(plain.length).toBeLessThan(1 * MB);
      const preflight = await fetch(`${consoleServer.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:8233', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
      const elsewhere = await fetch(`${consoleServer.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
      });
      expect(elsewhere.headers.get('access-control-allow-origin')).toBeNull();
      const bad = await fetch(`${consoleServer.url}/codec/decode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"payloads":[{"data":"not base64!"}]}',
      });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({ error: 'bad codec request: payloads[0].data is not base64' });
    } finally {
      await consoleServer.close();
    }
  }, 120_000);

  it('stores a 2.5 MB answer whole: the row has it, and the item history holds a key', async () => {
    const pipeline: PipelineSpecInput = {
      name: 'long-answer',
      prompt: { template: 'Write at length about {{text}}' },
      output: { format: 'text' },
      providers: [{ name: 'verbose', kind: 'openai', model: 'gpt-4o-mini', baseURL: answersUrl, timeout: '30s' }],
      retry: { maxAttempts: 1 },
    };
    const { summary, batchId } = await h.run(async () => {
      const handle = await h.startBatch({ pipeline, items: [{ id: 'long', text: 'rivers' }] });
      return { summary: await handle.result(), batchId: handle.workflowId };
    });
    expect(summary).toMatchObject({ total: 1, succeeded: 1 });
    const [row] = await h.store.list(batchId);
    expect(row).toMatchObject({ status: 'succeeded', provider: 'verbose' });
    expect(String(row!.output)).toHaveLength(2.5 * MB);
    const sizes = await largestEvents(h.client, [batchId, `${batchId}/long`]);
    for (const [id, bytes] of sizes) expect(bytes, `largest event of ${id}`).toBeLessThan(h.config.claimBytes + 16 * 1024);
  }, 120_000);
});
