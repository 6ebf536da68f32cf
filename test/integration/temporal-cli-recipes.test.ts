/**
 * The README's recipes with the real `temporal` CLI, run as a user would:
 * start a batch, query its progress, approve and skip items by signal, and list
 * a batch's items by search attribute. Each command here is one in the README.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalCliPath } from '../../src/dev/temporal-tools.ts';
import type { Progress } from '../../src/shared/messages.ts';
import { createHarness } from '../support/harness.ts';
import type { Harness } from '../support/harness.ts';

const run = promisify(execFile);

describe('README recipes with the temporal CLI', () => {
  let h: Harness;
  let temporal: (...args: string[]) => Promise<string>;
  beforeAll(async () => {
    h = await createHarness();
    const cli = temporalCliPath();
    expect(cli, 'the temporal CLI from scripts/setup.sh').toBeTruthy();
    temporal = async (...args) => (await run(cli!, [...args, '--address', h.address], { encoding: 'utf8' })).stdout;
  });
  afterAll(async () => h?.close());

  it('starts a batch, queries progress, approves and skips by signal, lists items by BatchId', async () => {
    // Two items whose every tier refuses for good (a permanent auth fault) wait for review.
    const input = {
      pipeline: {
        prompt: { template: 'Classify: {{text}}' },
        output: { format: 'json', schema: { type: 'object', properties: { label: { type: 'string' } }, required: ['label'] } },
        providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini' }],
      },
      items: [
        { id: 'ok-1', text: 'fine' },
        { id: 'bad-1', text: 'broken [[fault:auth]]' },
        { id: 'bad-2', text: 'broken too [[fault:auth]]' },
      ],
    };
    await h.run(async () => {
      await temporal('workflow', 'start', '--type', 'batchPipeline', '--task-queue', h.taskQueue, '--workflow-id', 'recipes-1', '--input', JSON.stringify(input));

      let progress: Progress | undefined;
      for (let i = 0; i < 100; i++) {
        const out = await temporal('workflow', 'query', '--workflow-id', 'recipes-1', '--name', 'progress', '--output', 'json');
        const qr = (JSON.parse(out) as { queryResult: Progress[] | Progress }).queryResult;
        progress = Array.isArray(qr) ? qr[0] : qr;
        if (progress?.awaitingReview?.length === 2) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(progress?.awaitingReview.map((p) => p.itemId).sort()).toEqual(['bad-1', 'bad-2']);
      expect(progress?.awaitingReview[0]?.errorType).toBe('AuthFailed');

      await temporal(
        'workflow',
        'signal',
        '--workflow-id',
        'recipes-1',
        '--name',
        'review',
        '--input',
        '{"itemId":"bad-1","decision":"approve","output":{"label":"checked by hand"}}',
      );
      await temporal('workflow', 'signal', '--workflow-id', 'recipes-1', '--name', 'review', '--input', '{"itemId":"bad-2","decision":"skip","note":"not worth it"}');
      const result = JSON.parse(await temporal('workflow', 'result', '--workflow-id', 'recipes-1', '--output', 'json')) as {
        result: { succeeded: number; approved: number; skipped: number };
      };
      expect(result.result).toMatchObject({ succeeded: 1, approved: 1, skipped: 1 });
    });

    // Visibility is eventually consistent: wait for the three items to be listed.
    let listed: { execution: { workflowId: string } }[] = [];
    for (let i = 0; i < 50 && listed.length < 3; i++) {
      listed = JSON.parse(await temporal('workflow', 'list', '--query', 'BatchId="recipes-1" AND WorkflowType="itemPipeline"', '--output', 'json')) ?? [];
      if (listed.length < 3) await new Promise((r) => setTimeout(r, 200));
    }
    expect(listed.map((w) => w.execution.workflowId).sort()).toEqual(['recipes-1/bad-1', 'recipes-1/bad-2', 'recipes-1/ok-1']);
    const skipped = JSON.parse(await temporal('workflow', 'list', '--query', 'BatchId="recipes-1" AND ItemStatus="skipped"', '--output', 'json')) as {
      execution: { workflowId: string };
    }[];
    expect(skipped.map((w) => w.execution.workflowId)).toEqual(['recipes-1/bad-2']);
    const rows = Object.fromEntries((await h.store.list('recipes-1')).map((r) => [r.itemId, r.status]));
    expect(rows).toEqual({ 'ok-1': 'succeeded', 'bad-1': 'approved', 'bad-2': 'skipped' });
  }, 90_000);
});
