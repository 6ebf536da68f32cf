import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliError, ExitCode } from '../../src/client/cli/errors.ts';
import { Problems, checkBatchId, defaultBatchId, itemsFormat, loadBatch, parseItemsText, parseSpecText, shouldPassByReference } from '../../src/client/cli/input.ts';
import { planTransport } from '../../src/client/cli/run.ts';
import { PipelineSpec } from '../../src/shared/spec.ts';

const SPEC = PipelineSpec.parse({
  name: 'triage',
  prompt: { template: 'Ticket {{id}} from {{customer}}: {{text}}' },
  providers: [{ kind: 'openai', model: 'gpt-4o-mini' }],
});

function items(text: string, format: 'jsonl' | 'csv' = 'jsonl', spec: PipelineSpec | null = SPEC) {
  const problems = new Problems();
  const list = parseItemsText(text, `items.${format}`, format, spec, problems);
  return { list, problems: problems.lines() };
}

async function thrown(p: Promise<unknown>): Promise<CliError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error('expected a CliError');
}

describe('JSONL items', () => {
  it('reads one object per line, skipping blank lines and CRLF', () => {
    const r = items('{"id":"a","customer":"X","text":"t1"}\r\n\n  \n{"id":"b","customer":"Y","text":"t2","extra":{"n":1}}\n');
    expect(r.problems).toEqual([]);
    expect(r.list).toEqual([
      { id: 'a', customer: 'X', text: 't1' },
      { id: 'b', customer: 'Y', text: 't2', extra: { n: 1 } },
    ]);
  });

  it('names the line and the field of every problem', () => {
    const text = [
      '{"id":"a","customer":"X","text":"ok"}',
      '{"id":"b","customer":"Y"}',
      '{"id":"a","customer":"Z","text":"dup"}',
      '{"id":7,"customer":"Z","text":"n"}',
      '{"id":"c", bad json}',
      '[1,2]',
      '{"id":"","customer":"Z","text":"n"}',
      '{"id":"d","customer":"Z","text":"  "}',
      '{"id":"e","customer":"Z","text":"x","_invalid":"y"}',
    ].join('\n');
    expect(items(text).problems).toEqual([
      'items.jsonl:2: text: missing (the prompt template or input.required uses it)',
      'items.jsonl:3: duplicate id "a" (first on line 1)',
      'items.jsonl:4: id: Invalid input: expected string, received number',
      expect.stringMatching(/^items\.jsonl:5: not valid JSON: /),
      'items.jsonl:6: Invalid input: expected object, received array',
      'items.jsonl:7: id: item id must be a non-empty string',
      'items.jsonl:8: text: empty (the prompt template or input.required uses it)',
      expect.stringMatching(/^items\.jsonl:9: _invalid: a reserved field name/),
    ]);
  });

  it('checks input.required and input.maxChars from the spec', () => {
    const spec = PipelineSpec.parse({ ...SPEC, input: { required: ['lang'], maxChars: 60 } });
    const r = items('{"id":"a","customer":"X","text":"t"}\n{"id":"b","customer":"X","text":"a much longer text that goes over","lang":"en"}', 'jsonl', spec);
    expect(r.problems).toEqual([
      'items.jsonl:1: lang: missing (the prompt template or input.required uses it)',
      expect.stringMatching(/^items\.jsonl:2: \d+ characters, over input\.maxChars 60$/),
    ]);
  });

  it('checks shape and duplicates even when the spec is invalid', () => {
    expect(items('{"id":"a"}\n{"id":"a"}', 'jsonl', null).problems).toEqual(['items.jsonl:2: duplicate id "a" (first on line 1)']);
  });

  it('reports an empty file', () => {
    expect(items('\n\n').problems).toEqual(['items.jsonl: no items']);
  });

  it('shows the first 20 problems and counts the rest', () => {
    const text = Array.from({ length: 25 }, (_, i) => `oops ${i}`).join('\n');
    const r = items(text);
    expect(r.problems).toHaveLength(21);
    expect(r.problems[19]).toMatch(/^items\.jsonl:20: not valid JSON/);
    expect(r.problems[20]).toBe('... and 5 more problems');
  });
});

describe('CSV items', () => {
  it('maps the header to fields, with quoted commas, newlines and quotes', () => {
    const r = items('id,customer,text\n1,Acme,"Hello, world"\n2,"Beta ""B""","two\nlines"\n', 'csv');
    expect(r.problems).toEqual([]);
    expect(r.list).toEqual([
      { id: '1', customer: 'Acme', text: 'Hello, world' },
      { id: '2', customer: 'Beta "B"', text: 'two\nlines' },
    ]);
  });

  it('names the line of a short row, an empty field and a duplicate id (lines count quoted newlines)', () => {
    const r = items('id,customer,text\n1,A,"multi\nline"\n2,B\n3,C,\n1,D,again\n', 'csv');
    expect(r.problems).toEqual([
      'items.csv:4: 2 fields, but the header has 3',
      'items.csv:5: text: empty (the prompt template or input.required uses it)',
      'items.csv:6: duplicate id "1" (first on line 2)',
    ]);
  });

  it('requires an id column and unique, named columns', () => {
    expect(items('name,text\nx,y\n', 'csv').problems).toEqual(['items.csv:1: the header has no "id" column (columns: name, text)']);
    expect(items('id,text,text,\n1,a,b,c\n', 'csv').problems).toEqual([
      'items.csv:1: column "text" appears twice in the header',
      'items.csv:1: column 4 of the header has no name',
    ]);
  });

  it('reports an unclosed quote with its line', () => {
    expect(items('id,customer,text\n1,A,ok\n2,B,"open\n', 'csv').problems).toEqual(['items.csv:3: a quoted field is never closed (unmatched ")']);
  });
});

describe('pipeline spec', () => {
  it('reads YAML and fills the defaults', () => {
    const problems = new Problems();
    const { spec, raw } = parseSpecText(
      'name: triage\nprompt:\n  template: "Hi {{name}}"\nproviders:\n  - kind: anthropic\n    model: claude\n    timeout: 30s\n',
      'p.yaml',
      problems,
    );
    expect(problems.lines()).toEqual([]);
    expect(raw).toMatchObject({ providers: [{ timeout: '30s' }] });
    expect(spec?.providers[0]?.timeout).toBe(30_000);
    expect(spec?.batch.concurrency).toBe(10);
  });

  it('names each invalid field on its own line, prefixed with the file', () => {
    const problems = new Problems();
    const { spec } = parseSpecText(
      JSON.stringify({ prompt: { template: 'x' }, providers: [{ kind: 'openaii', model: 'm' }], retry: { maxAttempts: 0 }, extra: 1 }),
      'p.json',
      problems,
    );
    expect(spec).toBeNull();
    expect(problems.lines()).toEqual([
      expect.stringMatching(/^p\.json: providers\[0\]\.kind: Invalid option: expected one of/),
      'p.json: retry.maxAttempts: Too small: expected number to be >=1',
      'p.json: (root): Unrecognized key: "extra"',
    ]);
  });

  it('gives the line and column of a YAML syntax error', () => {
    const problems = new Problems();
    parseSpecText('name: x\nname: y\n', 'p.yml', problems);
    expect(problems.lines()).toEqual(['p.yml:2:1: not valid YAML: Map keys must be unique']);
  });

  it('reports invalid JSON and an empty spec', () => {
    const problems = new Problems();
    parseSpecText('{"name": }', 'p.json', problems);
    parseSpecText('', 'empty.yaml', problems);
    expect(problems.lines()).toEqual([expect.stringMatching(/^p\.json: not valid JSON: /), expect.stringMatching(/^empty\.yaml: \(root\): Invalid input: expected object/)]);
  });
});

describe('loadBatch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-input-'));
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('returns the spec as written, the parsed spec and the items', async () => {
    const spec = write('ok.yaml', 'name: t\nprompt:\n  template: "{{text}}"\nproviders:\n  - kind: openai\n    model: m\n');
    const b = await loadBatch(write('ok.csv', 'id,text\n1,a\n2,b\n'), spec);
    expect(b.rawSpec).toEqual({ name: 't', prompt: { template: '{{text}}' }, providers: [{ kind: 'openai', model: 'm' }] });
    expect(b.items).toEqual([
      { id: '1', text: 'a' },
      { id: '2', text: 'b' },
    ]);
    expect(b.format).toBe('csv');
  });

  it('throws one usage error (exit 2) listing problems from both files', async () => {
    const err = await thrown(loadBatch(write('bad.jsonl', '{"id":"a","text":"x"}\n{"id":"a","text":"y"}\n'), write('bad.json', '{"prompt":{"template":"x"},"providers":[]}')));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.lines).toEqual([
      expect.stringMatching(/bad\.json: providers: at least one provider$/),
      expect.stringMatching(/bad\.jsonl:2: duplicate id "a" \(first on line 1\)$/),
      'nothing was started (2 problems)',
    ]);
  });

  it('reports missing files and unknown formats', async () => {
    const err = await thrown(loadBatch(join(dir, 'none.jsonl'), join(dir, 'none.yaml')));
    expect(err.lines.slice(0, 2)).toEqual([
      expect.stringMatching(/none\.yaml: cannot read the file: no such file$/),
      expect.stringMatching(/none\.jsonl: cannot read the file: no such file$/),
    ]);
    expect(() => itemsFormat('items.xlsx')).toThrow(/unknown items format ".xlsx"/);
  });
});

describe('batch id and transport', () => {
  it('defaults to <spec name>-<UTC timestamp>', () => {
    expect(defaultBatchId('ticket-triage', new Date('2026-11-24T01:30:05.123Z'))).toBe('ticket-triage-20261124T013005');
    expect(defaultBatchId('My pipeline/v2', new Date('2026-11-24T01:30:05Z'))).toBe('My-pipeline-v2-20261124T013005');
  });

  it('rejects ids with a slash or spaces', () => {
    expect(checkBatchId('tickets-1')).toBe('tickets-1');
    expect(() => checkBatchId('a/b')).toThrow(/no "\/"/);
    expect(() => checkBatchId('a b')).toThrow(CliError);
  });

  it('passes large inputs by reference', () => {
    const small = [{ id: '1', text: 'x' }];
    expect(shouldPassByReference(small, false)).toBe(false);
    expect(shouldPassByReference(small, true)).toBe(true);
    expect(
      shouldPassByReference(
        Array.from({ length: 2_001 }, (_, i) => ({ id: String(i) })),
        false,
      ),
    ).toBe(true);
    expect(shouldPassByReference([{ id: '1', text: 'x'.repeat(1_100_000) }], false)).toBe(true);
  });

  it('references a JSONL file itself and converts CSV under the inputs dir', () => {
    const base = { rawSpec: { prompt: { template: 'x' }, providers: [] }, spec: SPEC, items: [{ id: '1' }], bytes: 10 };
    expect(planTransport({ ...base, format: 'jsonl' }, 'in/items.jsonl', 'b1', { forced: true, inputsDir: '/tmp/x' })).toEqual({
      kind: 'reference',
      path: join(process.cwd(), 'in/items.jsonl'),
      written: false,
    });
    expect(planTransport({ ...base, format: 'csv' }, 'in/items.csv', 'b1', { forced: true, inputsDir: '/tmp/x' })).toEqual({
      kind: 'reference',
      path: '/tmp/x/b1.jsonl',
      written: true,
    });
    expect(planTransport({ ...base, format: 'csv' }, 'in/items.csv', 'b1', { forced: false, inputsDir: '/tmp/x' })).toEqual({ kind: 'inline', items: [{ id: '1' }] });
  });

  it('copies a JSONL file outside the source roots under the inputs dir, where the workers may read it', () => {
    const base = { rawSpec: { prompt: { template: 'x' }, providers: [] }, spec: SPEC, items: [{ id: '1' }], bytes: 10 };
    const roots = [join(process.cwd(), 'data')];
    expect(planTransport({ ...base, format: 'jsonl' }, '/home/ann/items.jsonl', 'b1', { forced: true, inputsDir: 'data/inputs', roots })).toEqual({
      kind: 'reference',
      path: join(process.cwd(), 'data/inputs/b1.jsonl'),
      written: true,
    });
    expect(planTransport({ ...base, format: 'jsonl' }, 'data/in/items.jsonl', 'b1', { forced: true, inputsDir: 'data/inputs', roots })).toEqual({
      kind: 'reference',
      path: join(process.cwd(), 'data/in/items.jsonl'),
      written: false,
    });
  });
});
