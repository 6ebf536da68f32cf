/**
 * The CLI as users run it: `node src/client/cli.ts ...` in a child process against the
 * run's Temporal dev server, with a harness worker running in this process
 * (`h.run`) and the harness's SQLite results file. Asserts output and exit codes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/client/cli/csv.ts';
import type { BatchInputRaw } from '../../src/shared/spec.ts';
import type { BatchSummary, ResultRecord } from '../../src/shared/types.ts';
import type { PendingReview } from '../../src/shared/messages.ts';
import { harnessEnv, runCli } from '../support/cli.ts';
import type { CliResult } from '../support/cli.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const SPEC_YAML = `name: cli-test
prompt:
  system: You summarise tickets.
  template: "Ticket {{id}} from {{customer}}: {{text}}"
providers:
  - name: primary
    kind: openai
    model: gpt-4o-mini
    timeout: 5s
retry:
  maxAttempts: 2
  initialInterval: 10ms
  maxInterval: 50ms
review:
  timeout: 1h
`;

describe('steadfast CLI against a real Temporal server', () => {
  let h: Harness;
  let dir: string;

  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => h?.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'steadfast-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  /** Runs the CLI in a child process (asynchronously: the worker in this process must keep polling). */
  // Links point where configuration says the Web UI is (compose serves it on :8080).
  const cli = (...args: string[]): Promise<CliResult> => runCli(args, { ...harnessEnv(h), TEMPORAL_UI_URL: 'http://127.0.0.1:8080' }, dir);

  const jsonl = (items: object[]) => items.map((i) => JSON.stringify(i)).join('\n') + '\n';

  it('run --detach starts the batch; status shows the summary; export writes JSONL and CSV', async () => {
    const spec = file('pipeline.yaml', SPEC_YAML);
    const items = file(
      'items.jsonl',
      jsonl([
        { id: 'a', customer: 'Acme', text: 'The export button fails, again.' },
        { id: 'b', customer: 'Beta', text: 'How do I "reset" my password?' },
        { id: 'c', customer: 'Gamma', text: 'Invoice\nis wrong' },
      ]),
    );

    await h.run(async () => {
      const run = await cli('run', items, '--pipeline', spec, '--batch-id', 'cli-detach', '--detach');
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout.split('\n')).toEqual([
        'batch cli-detach started: 3 items, inline',
        'Web UI: http://127.0.0.1:8080/namespaces/default/workflows/cli-detach',
        'watch it with: steadfast status cli-detach',
        '',
      ]);
      const summary = (await h.client.workflow.getHandle('cli-detach').result()) as BatchSummary;
      expect(summary).toMatchObject({ total: 3, succeeded: 3, status: 'completed' });

      const again = await cli('run', items, '--pipeline', spec, '--batch-id', 'cli-detach', '--detach');
      expect(again.code).toBe(1);
      expect(again.stderr).toBe('batch cli-detach already exists; choose another --batch-id (see it with: steadfast status cli-detach)\n');
    });

    // A completed batch's summary comes from its history: no worker needed.
    const status = await cli('status', 'cli-detach');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^batch +cli-detach$/m);
    expect(status.stdout).toMatch(/^status +completed$/m);
    expect(status.stdout).toMatch(/^succeeded +3$/m);
    expect(status.stdout).toMatch(/^tier use +primary 3$/m);
    const json = await cli('status', 'cli-detach', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ batchId: 'cli-detach', status: 'COMPLETED', summary: { total: 3, succeeded: 3 } });

    const rows = await cli('export', 'cli-detach', '--format', 'jsonl');
    expect(rows.code).toBe(0);
    const records = rows.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ResultRecord);
    expect(records.map((r) => [r.itemId, r.status, r.provider])).toEqual([
      ['a', 'succeeded', 'primary'],
      ['b', 'succeeded', 'primary'],
      ['c', 'succeeded', 'primary'],
    ]);

    const csv = await cli('export', 'cli-detach', '--format', 'csv', '--out', 'out.csv');
    expect(csv.code).toBe(0);
    expect(csv.stderr).toBe('3 rows written to out.csv\n');
    const parsed = parseCsv(readFileSync(join(dir, 'out.csv'), 'utf8'));
    expect(parsed.error).toBeNull();
    const [header, ...body] = parsed.records.map((r) => r.fields);
    expect(header?.slice(0, 3)).toEqual(['batchId', 'itemId', 'status']);
    const output = header!.indexOf('output');
    expect(body.map((r) => JSON.parse(r[output]!))).toEqual(records.map((r) => r.output));

    const none = await cli('export', 'cli-detach', '--failed', '--format', 'csv');
    expect(none.code).toBe(0);
    expect(none.stdout.split('\n')[0]).toBe('batchId,itemId,status,errorType,errorMessage,attempts,provider,model,tier,firstErrorAt,lastErrorAt,startedAt,finishedAt');
    expect(none.stdout.trim().split('\n')).toHaveLength(1);
    expect(none.stderr).toBe('batch cli-detach: no failed, skipped or awaiting-review items among 3 rows\n');
  });

  it('run watches until done (plain lines off a terminal); CSV by reference goes through a JSONL copy', async () => {
    const spec = file('pipeline.yaml', SPEC_YAML);
    const items = file('items.csv', 'id,customer,text\n1,Acme,"Hello, world"\n2,"Beta ""B""","two\nlines"\n3,Gamma,plain\n');
    const run = await h.run(() => cli('run', items, '-p', spec, '--batch-id', 'cli-watch', '--source-by-reference'));
    expect(run.code).toBe(0);
    const copy = join(dir, 'data', 'inputs', 'cli-watch.jsonl');
    expect(run.stdout).toContain(`batch cli-watch started: 3 items, by reference from ${copy}`);
    expect(run.stdout).not.toContain('\x1b');
    expect(run.stdout).toMatch(/^status +completed$/m);
    expect(run.stdout).toMatch(/^succeeded +3$/m);
    expect(
      readFileSync(copy, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { id: '1', customer: 'Acme', text: 'Hello, world' },
      { id: '2', customer: 'Beta "B"', text: 'two\nlines' },
      { id: '3', customer: 'Gamma', text: 'plain' },
    ]);
    const input = (await h.client.workflow.getHandle('cli-watch').fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
    expect(JSON.parse(Buffer.from(input!).toString()) as BatchInputRaw).toMatchObject({ batchId: 'cli-watch', source: { jsonl: copy } });
    expect((await h.store.list('cli-watch')).map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  });

  it('a bad file starts nothing: exit 2, every problem with its line and field', async () => {
    // With a worker polling, so a started batch would show.
    await h.run(badFile);
  });

  async function badFile(): Promise<void> {
    const spec = file('pipeline.yaml', SPEC_YAML);
    const items = file('items.jsonl', '{"id":"a","customer":"A","text":"ok"}\n{"id":"b","customer":"B"}\n{"id":"a","customer":"C","text":"dup"}\n{oops\n');
    const run = await cli('run', items, '--pipeline', spec, '--batch-id', 'cli-bad', '--detach');
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.split('\n')).toEqual([
      `${items}:2: text: missing (the prompt template or input.required uses it)`,
      `${items}:3: duplicate id "a" (first on line 1)`,
      expect.stringMatching(new RegExp(`^${items.replace(/[.]/g, '\\.')}:4: not valid JSON: `)),
      'nothing was started (3 problems)',
      '',
    ]);
    await expect(h.client.workflow.getHandle('cli-bad').describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const badSpec = file('bad.json', JSON.stringify({ prompt: { template: '{{text}}' }, providers: [{ kind: 'gpt', model: 'x' }] }));
    const run2 = await cli('run', items.replace('items.jsonl', 'missing.jsonl'), '--pipeline', badSpec, '--batch-id', 'cli-bad');
    expect(run2.code).toBe(2);
    expect(run2.stderr).toContain(`${badSpec}: providers[0].kind: Invalid option: expected one of "openai"|"anthropic"|"openai-compatible"`);
    expect(run2.stderr).toContain('missing.jsonl: cannot read the file: no such file');
    await expect(h.client.workflow.getHandle('cli-bad').describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const unknown = await cli('status', 'no-such-batch');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('no batch "no-such-batch" in namespace default\n');
  }

  it('review: list, a rejected decision, approve by Update, skip by signal; export --failed', async () => {
    const spec = file('pipeline.yaml', SPEC_YAML);
    const items = file(
      'items.jsonl',
      jsonl([
        { id: 'ok', customer: 'A', text: 'fine' },
        { id: 'bad1', customer: 'B', text: 'needs a human [[fault:auth]]' },
        { id: 'bad2', customer: 'C', text: 'also [[fault:auth]]' },
      ]),
    );
    const approved = file('answer.txt', 'A human wrote this answer.');

    await h.run(async () => {
      expect((await cli('run', items, '-p', spec, '--batch-id', 'cli-review', '--detach')).code).toBe(0);
      let pending: PendingReview[] = [];
      for (let i = 0; i < 60 && pending.length < 2; i += 1) {
        const list = await cli('review', 'list', 'cli-review', '--json');
        expect(list.code).toBe(0);
        pending = JSON.parse(list.stdout) as PendingReview[];
        if (pending.length < 2) await new Promise((r) => setTimeout(r, 250));
      }
      expect(pending.map((p) => [p.itemId, p.errorType]).sort()).toEqual([
        ['bad1', 'AuthFailed'],
        ['bad2', 'AuthFailed'],
      ]);

      const table = await cli('review', 'list', 'cli-review');
      expect(table.stdout).toMatch(/^ITEM +ERROR +WAITING +REASON$/m);
      expect(table.stdout).toMatch(/^bad1 +AuthFailed +\S+ ago +\S/m);
      expect(table.stdout).toContain('steadfast review approve cli-review <itemId>');
      const status = await cli('status', 'cli-review');
      expect(status.stdout).toMatch(/^awaiting review +2 \(AuthFailed 2\)$/m);

      const rejected = await cli('review', 'approve', 'cli-review', 'nope');
      expect(rejected.code).toBe(1);
      expect(rejected.stderr).toBe('review rejected: item "nope" is not in batch cli-review or has finished\n');
      const badProvider = await cli('review', 'retry', 'cli-review', 'bad1', '--provider', 'tier9');
      expect(badProvider.code).toBe(1);
      expect(badProvider.stderr).toMatch(/^review rejected: item bad1: provider "tier9" is not a tier of this pipeline/);

      const approve = await cli('review', 'approve', 'cli-review', 'bad1', '--output', approved, '--note', 'checked by hand');
      expect(approve.stderr).toBe('');
      expect(approve.code).toBe(0);
      expect(approve.stdout).toBe('item bad1 of batch cli-review approved (note: checked by hand)\n');
      const skip = await cli('review', 'skip', 'cli-review', 'bad2', '--signal');
      expect(skip.code).toBe(0);
      expect(skip.stdout).toMatch(/^review signal sent: skip item bad2 of batch cli-review/);

      const summary = (await h.client.workflow.getHandle('cli-review').result()) as BatchSummary;
      expect(summary).toMatchObject({ total: 3, succeeded: 1, approved: 1, skipped: 1 });
    });

    const rows = await h.store.list('cli-review');
    expect(rows.find((r) => r.itemId === 'bad1')).toMatchObject({ status: 'approved', output: 'A human wrote this answer.' });
    const dead = await cli('export', 'cli-review', '--failed', '--format', 'csv');
    expect(dead.code).toBe(0);
    const [header, ...body] = parseCsv(dead.stdout).records.map((r) => r.fields);
    const row = Object.fromEntries(header!.map((c, i) => [c, body[0]?.[i]]));
    expect(body).toHaveLength(1);
    expect(row).toMatchObject({ itemId: 'bad2', status: 'skipped', errorType: 'AuthFailed' });
    expect(row.errorMessage).not.toBe('');
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});
