/**
 * Multi-step pipelines, the pure parts: the `when` grammar (results, and errors that
 * name the position), the spec rules across steps (each error names its field), the
 * per-step plan (defaults merged), the batch's per-step counts and review queue, and
 * the export's flattening of steps into columns.
 */
import { describe, expect, it } from 'vitest';
import { parseCsv as parseCsvRecords } from '../../src/client/cli/csv.ts';
import { ExportWriter, RESULT_COLUMNS, STEP_COLUMNS } from '../../src/client/cli/export.ts';
import { reviewTable } from '../../src/client/cli/format.ts';
import { addStepStats, planSteps, stepSpec } from '../../src/shared/pipeline-steps.ts';
import type { StepBrief, StepResult } from '../../src/shared/pipeline-steps.ts';
import { PipelineSpec, formatIssues } from '../../src/shared/spec.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { ItemOutcome, ResultRecord } from '../../src/shared/types.ts';
import { WhenSyntaxError, evaluateWhen, parseWhen } from '../../src/shared/when.ts';
import { BatchState, initialCarry } from '../../workflows/batch-state.ts';

const ctx = {
  item: { id: 'x', country: 'DE', vip: true },
  steps: { extract: { total: 150, currency: 'EUR', lines: [{ sku: 'a' }] }, classify: { category: 'travel' }, skipped: null },
};
const when = (src: string) => evaluateWhen(parseWhen(src, ['extract', 'classify', 'skipped']), ctx);

describe('when conditions', () => {
  it('compares numbers, strings and literals, with and/or/not and parentheses', () => {
    expect(when('steps.extract.total >= 100')).toBe(true);
    expect(when('steps.extract.total < 100')).toBe(false);
    expect(when('steps.extract.total == 150 and steps.extract.currency == "EUR"')).toBe(true);
    expect(when("steps.classify.category != 'travel' or item.vip")).toBe(true);
    expect(when('not (steps.extract.total > 100 && item.country == "DE")')).toBe(false);
    expect(when('!item.vip || steps.extract.total <= -1')).toBe(false);
    expect(when('steps.extract.lines.0.sku == "a"')).toBe(true);
    expect(when('"b" > "a"')).toBe(true);
    expect(when('1.5e2 == steps.extract.total')).toBe(true);
  });

  it('reads a missing path or a skipped step as null and never coerces', () => {
    expect(when('steps.skipped.total == null')).toBe(true);
    expect(when('steps.skipped.total > 0')).toBe(false);
    expect(when('steps.skipped')).toBe(false);
    expect(when('item.nothing == null')).toBe(true);
    expect(when('item.country == 1')).toBe(false);
    expect(when('steps.extract.currency > 5')).toBe(false);
    expect(when('steps.classify == steps.classify')).toBe(true);
  });

  it('rejects bad conditions with the position of the problem', () => {
    const err = (src: string, steps = ['extract']) => {
      try {
        parseWhen(src, steps);
      } catch (e) {
        expect(e).toBeInstanceOf(WhenSyntaxError);
        return (e as Error).message;
      }
      throw new Error(`parsed: ${src}`);
    };
    expect(err('steps.note.x > 1')).toBe('at position 1: step "note" is not an earlier step (earlier steps: extract)');
    expect(err('steps.extract.total >')).toBe('at position 22: expected a value (number, string, true, false, null, a path or "("), found the end of the condition');
    expect(err('total > 1')).toBe('at position 1: unknown name "total": a path starts with "steps." or "item."');
    expect(err('(steps.extract.total > 1')).toContain('expected ")" to close the "(" at position 1');
    expect(err('item.a = 1')).toBe('at position 8: unexpected character "="');
    expect(err('item.a == "open')).toBe('at position 11: the string started here has no closing "');
    expect(err('item.a == 1 item.b')).toBe('at position 13: unexpected "item"');
    expect(err('steps.extract.total > 1', [])).toContain('no step runs before this one');
  });
});

const tier = { kind: 'openai' as const, model: 'gpt-4o-mini' };
const base: PipelineSpecInput = {
  steps: [
    { name: 'extract', prompt: { template: 'Extract {{text}}' }, output: { format: 'json', schema: { type: 'object' } } },
    {
      name: 'note',
      prompt: { template: 'Note on {{steps.extract.total}}' },
      when: 'steps.extract.total > 10',
      retry: { maxAttempts: 2 },
      providers: [{ ...tier, model: 'gpt-4o' }],
    },
  ],
  providers: [tier],
  retry: { maxAttempts: 4, initialInterval: '2s' },
};
const problems = (spec: unknown) => {
  const r = PipelineSpec.safeParse(spec);
  return r.success ? '' : formatIssues(r.error, 'pipeline');
};

describe('the spec of a multi-step pipeline', () => {
  it('plans each step with the pipeline defaults under its overrides', () => {
    const spec = PipelineSpec.parse(base);
    const [extract, note] = planSteps(spec);
    expect(extract).toMatchObject({ name: 'extract', sharedTiers: true, when: null });
    expect(extract!.spec.providers).toEqual(spec.providers);
    expect(extract!.spec.output).toMatchObject({ format: 'json' });
    expect(extract!.spec.retry).toEqual({ maxAttempts: 4, initialInterval: 2_000, maxInterval: 60_000, backoffCoefficient: 2 });
    expect(note).toMatchObject({ name: 'note', sharedTiers: false });
    expect(note!.spec.retry).toEqual({ maxAttempts: 2, initialInterval: 2_000, maxInterval: 60_000, backoffCoefficient: 2 });
    expect(note!.spec.providers[0]!.model).toBe('gpt-4o');
    expect(note!.spec.output).toEqual({ format: 'text' });
    expect('steps' in note!.spec).toBe(false);
    expect(stepSpec(spec, 'note')?.prompt?.template).toBe('Note on {{steps.extract.total}}');
    expect(stepSpec(spec, 'nope')).toBeNull();
  });

  it('keeps a one-prompt spec exactly as before: no steps, no plan', () => {
    const spec = PipelineSpec.parse({ prompt: { template: '{{text}}' }, providers: [tier] });
    expect('steps' in spec).toBe(false);
    expect(planSteps(spec)).toEqual([]);
  });

  it('names the field of every cross-step mistake', () => {
    expect(problems({ providers: [tier] })).toBe('pipeline.prompt: a prompt is required (or give "steps")');
    expect(problems({ ...base, prompt: { template: 'x' } })).toContain('pipeline.prompt: give either "prompt" or "steps", not both');
    expect(problems({ ...base, output: { format: 'json' } })).toContain('pipeline.output: with "steps" each step has its own output');
    expect(problems({ ...base, steps: [base.steps![0], { ...base.steps![0] }] })).toContain('pipeline.steps[1].name: step name "extract" is used twice');
    expect(
      problems({
        ...base,
        steps: [
          { name: 'a', prompt: { template: '{{steps.b.x}}' } },
          { name: 'b', prompt: { template: 'y' } },
        ],
      }),
    ).toBe('pipeline.steps[0].prompt: {{steps.b...}} does not name an earlier step (this is the first step)');
    expect(problems({ ...base, steps: [base.steps![0], { ...base.steps![1], when: 'steps.extract.total >> 1' }] })).toBe(
      'pipeline.steps[1].when: step "note": at position 22: expected a value (number, string, true, false, null, a path or "("), found ">"',
    );
    expect(problems({ ...base, steps: [{ name: 'has space', prompt: { template: 'x' } }] })).toContain('pipeline.steps[0].name:');
    expect(problems({ ...base, steps: [] })).toContain('pipeline.steps');
  });
});

const spec = PipelineSpec.parse(base);
const parseCsv = (text: string): string[][] => parseCsvRecords(text).records.map((r) => r.fields);
const brief = (name: string, status: StepBrief['status'], tier: number | null = 0): StepBrief => ({
  name,
  status,
  tier,
  provider: tier === null ? null : `t${tier}`,
  attempts: status === 'skipped' ? 0 : 1,
  inputTokens: 10,
  outputTokens: 5,
  costUsd: 0.5,
  truncated: false,
  reviewed: status === 'approved',
  errorType: null,
});

describe('the batch per step', () => {
  it('sums tokens, cost, reviews and fallbacks per step', () => {
    let s = addStepStats({}, [brief('extract', 'succeeded', 1), brief('note', 'skipped', null)]);
    s = addStepStats(s, [brief('extract', 'approved'), brief('note', 'succeeded')]);
    expect(s['extract']).toEqual({
      succeeded: 1,
      approved: 1,
      skipped: 0,
      reviewed: 1,
      failed: 0,
      attempts: 2,
      inputTokens: 20,
      outputTokens: 10,
      costUsd: 1,
      fallbacks: 1,
      tierUse: { t1: 1 },
    });
    expect(s['note']).toMatchObject({ succeeded: 1, skipped: 1, fallbacks: 0, tierUse: { t0: 1 } });
  });

  it('shows where running items are and which step each waiting item waits at, and carries it', () => {
    const st = new BatchState(initialCarry('b', spec, [], undefined, '2026-01-01T00:00:00Z'));
    for (const id of ['a', 'b', 'c']) st.markStarted(id);
    expect(st.setStep('b', 'note')).toBe(true);
    expect(st.setStep('zz', 'note')).toBe(false);
    expect(st.addPending({ itemId: 'c', errorType: 'AuthFailed', reason: '401', since: '2026-01-01T00:00:01Z', step: 'note' })).toBe(true);
    expect(st.progress(Date.parse('2026-01-01T00:01:00Z')).steps).toEqual({ extract: { running: 1, awaitingReview: 0 }, note: { running: 1, awaitingReview: 1 } });
    expect(st.pendingStep('c')).toBe('note');
    expect(st.pendingPage(0, 10)).toEqual([{ itemId: 'c', errorType: 'AuthFailed', reason: '401', since: '2026-01-01T00:00:01.000Z', step: 'note' }]);
    expect(st.detailsMarkdown(Date.parse('2026-01-01T00:01:00Z'))).toContain('steps: extract 1 running; note 1 running, 1 awaiting review');

    // Across continue-as-new: the carry is plain JSON.
    const next = new BatchState(JSON.parse(JSON.stringify(st.carry())));
    expect(next.pendingStep('c')).toBe('note');
    expect(next.progress(Date.parse('2026-01-01T00:01:00Z')).steps).toEqual({ extract: { running: 1, awaitingReview: 0 }, note: { running: 1, awaitingReview: 1 } });
    const done: ItemOutcome = {
      itemId: 'b',
      status: 'succeeded',
      tier: 0,
      provider: 't0',
      attempts: 2,
      inputTokens: 20,
      outputTokens: 10,
      costUsd: 1,
      truncated: false,
      errorType: null,
      retried: 0,
      steps: [brief('extract', 'succeeded'), brief('note', 'succeeded')],
    };
    expect(next.applyOutcome(done)).toBe(true);
    expect(next.view.stepOf).toEqual({});
    expect(next.summary('2026-01-01T00:02:00Z', 'completed').steps).toMatchObject({ extract: { succeeded: 1 }, note: { succeeded: 1 } });
  });

  it('review list names the step', () => {
    const table = reviewTable([{ itemId: 'c', errorType: 'AuthFailed', reason: '401', since: '2026-01-01T00:00:00Z', step: 'classify' }], Date.parse('2026-01-01T00:05:00Z'));
    expect(table.split('\n')[0]).toMatch(/^ITEM\s+STEP\s+ERROR\s+WAITING\s+REASON$/);
    expect(table.split('\n')[1]).toMatch(/^c\s+classify\s+AuthFailed/);
  });
});

const step = (name: string, status: StepResult['status'], output: unknown): StepResult => ({
  name,
  status,
  output,
  tier: status === 'skipped' ? null : 0,
  provider: status === 'skipped' ? null : 'primary',
  model: status === 'skipped' ? null : 'gpt-4o-mini',
  attempts: status === 'skipped' ? 0 : 1,
  inputTokens: 10,
  outputTokens: 4,
  costUsd: 0.001,
  truncated: false,
  reviewed: false,
  errorType: null,
});
const row: ResultRecord = {
  batchId: 'b',
  itemId: 'i1',
  status: 'succeeded',
  output: { category: 'travel' },
  provider: 'primary',
  model: 'gpt-4o-mini',
  tier: 0,
  attempts: 2,
  inputTokens: 20,
  outputTokens: 8,
  costUsd: 0.002,
  truncation: null,
  error: null,
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:00:01.000Z',
  steps: [step('extract', 'succeeded', { total: 12, vendor: 'a, "b"' }), step('classify', 'succeeded', { category: 'travel' }), step('note', 'skipped', null)],
};

describe('export of multi-step rows', () => {
  it('CSV: the row, then <step>.<field> columns for every step', () => {
    const w = new ExportWriter({ format: 'csv', failed: false });
    const [header, line] = parseCsv(w.lines([row]));
    expect(header!.slice(0, RESULT_COLUMNS.length)).toEqual([...RESULT_COLUMNS]);
    expect(header!.slice(RESULT_COLUMNS.length, RESULT_COLUMNS.length + 3)).toEqual(['extract.status', 'extract.provider', 'extract.model']);
    expect(header).toContain('note.output');
    const cell = (name: string) => line![header!.indexOf(name)];
    expect(JSON.parse(cell('extract.output')!)).toEqual({ total: 12, vendor: 'a, "b"' });
    expect(cell('classify.costUsd')).toBe('0.001');
    expect(cell('note.status')).toBe('skipped');
    expect(cell('note.output')).toBe('');
  });

  it('--step NAME: one step per item, as CSV or JSONL', () => {
    const [header, line] = parseCsv(new ExportWriter({ format: 'csv', failed: false, step: 'classify' }).lines([row, { ...row, itemId: 'i2', steps: [row.steps![0]!] }]));
    expect(header).toEqual([...STEP_COLUMNS]);
    expect(line).toEqual(['b', 'i1', 'succeeded', 'classify', 'succeeded', 'primary', 'gpt-4o-mini', '0', '1', '10', '4', '0.001', '{"category":"travel"}', '']);
    const jsonl = new ExportWriter({ format: 'jsonl', failed: false, step: 'extract' }).lines([row]);
    expect(JSON.parse(jsonl)).toMatchObject({ itemId: 'i1', step: 'extract', status: 'succeeded', output: { total: 12 } });
  });
});

describe('items of a multi-step spec, checked before it runs', () => {
  it('requires the item fields of every step, not the outputs of earlier steps', async () => {
    const { validateItem } = await import('../../src/shared/template.ts');
    const two = PipelineSpec.parse({
      ...base,
      steps: [base.steps![0], { name: 'classify', prompt: { template: '{{steps.extract.total}} for {{customer}}' } }],
    });
    expect(validateItem({ id: 'a', text: 't', customer: 'c' }, two)).toEqual([]);
    expect(validateItem({ id: 'a', text: 't' }, two)).toEqual(['item a: field "customer" is missing']);
  });
});

describe('the step walker (item workflow state)', () => {
  const input = { batchId: 'b', item: { id: 'i', text: 'an invoice', ssn: '123-45-6789' }, pipeline: PipelineSpec.parse({ ...base, secretFields: ['ssn'] }) };

  it('feeds earlier outputs to the next step, sums the steps into the row and the outcome', async () => {
    const { StepWalk } = await import('../../workflows/step-walk.ts');
    const walk = new StepWalk(input);
    walk.status = 'succeeded';
    walk.run.status = 'succeeded';
    walk.run.output = { total: 42, vendor: 'quoting 123-45-6789' };
    walk.run.tier = 0;
    walk.run.attempts = 2;
    walk.run.inputTokens = 10;
    walk.finishStep('succeeded');
    walk.enter(1);
    // The next step's item carries the earlier outputs for its template; the reviewer sees them masked.
    expect(walk.run.item['steps']).toEqual({ extract: { total: 42, vendor: 'quoting 123-45-6789' } });
    expect(walk.details().step).toEqual({ name: 'note', index: 1, of: 2, earlier: [{ name: 'extract', status: 'succeeded', output: '{"total":42,"vendor":"quoting [secret]"}' }] });
    expect(walk.details().input).not.toHaveProperty('steps');
    walk.run.status = 'succeeded';
    walk.run.output = 'a note';
    walk.run.attempts = 1;
    walk.run.inputTokens = 5;
    walk.finishStep('succeeded');
    const outcome = walk.outcome();
    expect(outcome).toMatchObject({ status: 'succeeded', attempts: 3, inputTokens: 15, tier: null });
    expect(outcome.steps?.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['extract', 'succeeded', 2],
      ['note', 'succeeded', 1],
    ]);
    expect(outcome.steps?.[0]).not.toHaveProperty('output');
  });

  it('sends a step whose output would take the item past the budget to review', async () => {
    const { StepWalk, STEP_OUTPUTS_CHARS } = await import('../../workflows/step-walk.ts');
    const walk = new StepWalk(input);
    walk.run.status = 'succeeded';
    walk.run.output = 'x'.repeat(STEP_OUTPUTS_CHARS);
    walk.checkBudget();
    expect(walk.run.status).toBe('failed');
    expect(walk.run.lastError).toMatchObject({ type: 'InvalidOutput', message: expect.stringContaining('over the 33554432 an item may carry') });
  });
});
