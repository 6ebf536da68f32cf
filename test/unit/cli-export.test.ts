import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/client/cli/csv.ts';
import { DEAD_LETTER_COLUMNS, ExportWriter, RESULT_COLUMNS, deadLetterRow } from '../../src/client/cli/export.ts';
import type { ResultRecord } from '../../src/shared/types.ts';

const ok: ResultRecord = {
  batchId: 'b1',
  itemId: 'a',
  status: 'succeeded',
  output: { summary: 'says "hi", then\nleaves', urgency: 2 },
  provider: 'primary',
  model: 'gpt-4o-mini',
  tier: 0,
  attempts: 2,
  inputTokens: 120,
  outputTokens: 30,
  costUsd: 0.000036,
  truncation: null,
  error: null,
  startedAt: '2026-11-24T01:30:00.000Z',
  finishedAt: '2026-11-24T01:30:02.000Z',
};

const failed: ResultRecord = {
  ...ok,
  itemId: 'b',
  status: 'awaiting_review',
  output: null,
  provider: null,
  model: null,
  tier: null,
  attempts: 9,
  error: {
    type: 'InvalidOutput',
    message: 'output.urgency: expected integer, got "high", twice',
    attempts: 3,
    provider: 'secondary',
    firstAt: '2026-11-24T01:30:00.500Z',
    lastAt: '2026-11-24T01:30:04.000Z',
  },
};

describe('ExportWriter', () => {
  it('writes CSV with a header and JSON-encoded output and error, quoted so it reads back', () => {
    const w = new ExportWriter({ format: 'csv', failed: false });
    const text = w.lines([ok, failed]);
    const { records, error } = parseCsv(text);
    expect(error).toBeNull();
    expect(records.map((r) => r.fields)[0]).toEqual([...RESULT_COLUMNS]);
    const rows = records.slice(1).map((r) => Object.fromEntries(RESULT_COLUMNS.map((c, i) => [c, r.fields[i]])));
    expect(rows[0]).toMatchObject({
      itemId: 'a',
      status: 'succeeded',
      provider: 'primary',
      tier: '0',
      attempts: '2',
      costUsd: '0.000036',
      errorType: '',
      error: '',
      truncation: '',
    });
    expect(JSON.parse(rows[0]!.output!)).toEqual(ok.output);
    expect(rows[1]).toMatchObject({ itemId: 'b', status: 'awaiting_review', provider: '', tier: '', output: '', errorType: 'InvalidOutput' });
    expect(JSON.parse(rows[1]!.error!)).toEqual(failed.error);
  });

  it('writes the header once, even with no rows', () => {
    const w = new ExportWriter({ format: 'csv', failed: true });
    expect(w.lines([])).toBe(`${DEAD_LETTER_COLUMNS.join(',')}\n`);
    expect(w.lines([])).toBe('');
  });

  it('writes the dead-letter list with the error context', () => {
    const w = new ExportWriter({ format: 'csv', failed: true });
    const { records } = parseCsv(w.lines([failed]));
    expect(records[1]?.fields).toEqual([
      'b1',
      'b',
      'awaiting_review',
      'InvalidOutput',
      'output.urgency: expected integer, got "high", twice',
      '3',
      'secondary',
      '',
      '',
      '2026-11-24T01:30:00.500Z',
      '2026-11-24T01:30:04.000Z',
      ok.startedAt,
      ok.finishedAt,
    ]);
  });

  it('writes JSONL: whole records, or dead-letter rows', () => {
    expect(
      new ExportWriter({ format: 'jsonl', failed: false })
        .lines([ok, failed])
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    ).toEqual([ok, failed]);
    const dl = JSON.parse(new ExportWriter({ format: 'jsonl', failed: true }).lines([failed]));
    expect(dl).toEqual(deadLetterRow(failed));
    expect(dl).toMatchObject({ errorType: 'InvalidOutput', attempts: 3, provider: 'secondary', firstErrorAt: '2026-11-24T01:30:00.500Z' });
  });

  it('falls back to the record when a skipped item has no error context', () => {
    expect(deadLetterRow({ ...ok, status: 'skipped' })).toMatchObject({ errorType: null, errorMessage: null, attempts: 2, provider: 'primary' });
  });
});
