/**
 * RFC 4180 CSV, both ways: a reader that keeps the line number where each
 * record starts (quoted fields may span lines, so a record's line is not its
 * index), and a writer that quotes only what needs quoting.
 */

/** One record and the 1-based line on which it starts. */
export interface CsvRecord {
  line: number;
  fields: string[];
}

export interface CsvParseResult {
  records: CsvRecord[];
  /** A syntax error stops the reader; records before it are kept. */
  error: { line: number; message: string } | null;
}

export interface CsvOptions {
  /** @default `,` */
  delimiter?: string;
}

/**
 * Parses CSV text: fields separated by the delimiter, records by LF or CRLF;
 * a quoted field may hold delimiters, line breaks and `""` (one quote). Blank
 * lines are skipped; a leading byte-order mark is ignored.
 */
export function parseCsv(text: string, options: CsvOptions = {}): CsvParseResult {
  const delimiter = options.delimiter ?? ',';
  const records: CsvRecord[] = [];
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let line = 1;
  let i = 0;
  const n = src.length;

  while (i < n) {
    const startLine = line;
    const blank = src[i] === '\n' || src[i] === '\r';
    const fields: string[] = [];
    let field = '';
    let atFieldStart = true;
    let quoted = false;
    let endOfRecord = false;
    while (i < n && !endOfRecord) {
      const c = src[i]!;
      if (quoted) {
        if (c === '"') {
          if (src[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          quoted = false;
          i += 1;
          const next = src[i];
          if (next !== undefined && next !== delimiter && next !== '\n' && next !== '\r') {
            return { records, error: { line, message: `unexpected ${JSON.stringify(next)} after a closing quote (write "" for a quote inside a quoted field)` } };
          }
          continue;
        }
        if (c === '\n') line += 1;
        field += c;
        i += 1;
        continue;
      }
      if (c === '"' && atFieldStart) {
        quoted = true;
        atFieldStart = false;
        i += 1;
      } else if (c === delimiter) {
        fields.push(field);
        field = '';
        atFieldStart = true;
        i += 1;
      } else if (c === '\n' || c === '\r') {
        i += c === '\r' && src[i + 1] === '\n' ? 2 : 1;
        line += 1;
        endOfRecord = true;
      } else {
        field += c;
        atFieldStart = false;
        i += 1;
      }
    }
    if (quoted) return { records, error: { line: startLine, message: 'a quoted field is never closed (unmatched ")' } };
    fields.push(field);
    // A blank line is skipped rather than read as a record of one empty field.
    if (!blank) records.push({ line: startLine, fields });
  }
  return { records, error: null };
}

const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/;

/** One field, quoted when it holds a delimiter, quote or line break (or edge whitespace). */
export function csvField(value: string, delimiter = ','): string {
  if (NEEDS_QUOTES.test(value) || value.includes(delimiter)) return `"${value.replace(/"/g, '""')}"`;
  return value;
}

/** One record, without the line terminator. */
export function csvRow(values: readonly string[], delimiter = ','): string {
  return values.map((v) => csvField(v, delimiter)).join(delimiter);
}
