import { describe, expect, it } from 'vitest';
import { csvField, csvRow, parseCsv } from '../../src/client/cli/csv.ts';

describe('parseCsv', () => {
  it('reads quoted fields with delimiters, line breaks and escaped quotes, keeping start lines', () => {
    const text = 'id,text\n1,"a, b"\n2,"two\nlines ""quoted"""\n3,plain\n';
    const { records, error } = parseCsv(text);
    expect(error).toBeNull();
    expect(records).toEqual([
      { line: 1, fields: ['id', 'text'] },
      { line: 2, fields: ['1', 'a, b'] },
      { line: 3, fields: ['2', 'two\nlines "quoted"'] },
      { line: 5, fields: ['3', 'plain'] },
    ]);
  });

  it('accepts CRLF, a byte-order mark, blank lines, empty fields and no final newline', () => {
    const { records, error } = parseCsv('\uFEFFid,a,b\r\n\r\n1,,x\r\n2,"",\r\n"3",y,"z"');
    expect(error).toBeNull();
    expect(records).toEqual([
      { line: 1, fields: ['id', 'a', 'b'] },
      { line: 3, fields: ['1', '', 'x'] },
      { line: 4, fields: ['2', '', ''] },
      { line: 5, fields: ['3', 'y', 'z'] },
    ]);
  });

  it('keeps a quoted CRLF inside a field and counts it as one line', () => {
    const { records } = parseCsv('id,t\r\n1,"a\r\nb"\r\n2,c\r\n');
    expect(records[1]).toEqual({ line: 2, fields: ['1', 'a\r\nb'] });
    expect(records[2]).toEqual({ line: 4, fields: ['2', 'c'] });
  });

  it('reports an unclosed quote at the line where the field starts', () => {
    const { records, error } = parseCsv('id,t\n1,ok\n2,"never\nclosed\n');
    expect(records).toHaveLength(2);
    expect(error).toEqual({ line: 3, message: expect.stringContaining('never closed') });
  });

  it('reports text after a closing quote', () => {
    const { error } = parseCsv('id,t\n1,"a"b\n');
    expect(error?.line).toBe(2);
    expect(error?.message).toContain('after a closing quote');
  });

  it('takes a quote inside an unquoted field literally, and other delimiters', () => {
    expect(parseCsv('id\ta\n1\t5" tall\n', { delimiter: '\t' }).records[1]?.fields).toEqual(['1', '5" tall']);
  });
});

describe('csvField / csvRow', () => {
  it('quotes only what needs it and doubles quotes', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(' padded')).toBe('" padded"');
    expect(csvField('')).toBe('');
  });

  it('round-trips through parseCsv', () => {
    const rows = [
      ['id', 'output', 'note'],
      ['1', '{"a":"x, y","b":"say \\"hi\\""}', 'line one\nline two'],
      ['2', '', '"quoted"'],
    ];
    const text = rows.map((r) => csvRow(r)).join('\n') + '\n';
    expect(parseCsv(text).records.map((r) => r.fields)).toEqual(rows);
  });
});
