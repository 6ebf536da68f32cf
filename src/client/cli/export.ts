/**
 * `steadfast export`: a batch's rows from the results store as JSONL or CSV,
 * or with `--failed` its dead-letter list (failed, awaiting review, skipped)
 * with the error context stored for post-mortems (the dead-letter export).
 */
import { createWriteStream, existsSync, openSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Config } from '../../common/config.ts';
import type { ResultStore } from '../../../activities/store.ts';
import type { ItemStatus, ResultRecord } from '../../shared/types.ts';
import { csvRow } from './csv.ts';
import { failure, messageOf, usageError } from './errors.ts';

export type ExportFormat = 'jsonl' | 'csv';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['jsonl', 'csv'];

/** The statuses of the dead-letter list: every item that did not end with an output. */
export const DEAD_LETTER_STATUSES: readonly ItemStatus[] = ['failed', 'awaiting_review', 'skipped'];

/** Columns of a full export in CSV; `output`, `error` and `truncation` hold JSON. */
export const RESULT_COLUMNS = [
  'batchId',
  'itemId',
  'status',
  'provider',
  'model',
  'tier',
  'attempts',
  'inputTokens',
  'outputTokens',
  'costUsd',
  'startedAt',
  'finishedAt',
  'errorType',
  'output',
  'error',
  'truncation',
] as const;

/** One dead-letter entry: the item and why it did not finish. */
export interface DeadLetterRow {
  batchId: string;
  itemId: string;
  status: ItemStatus;
  errorType: string | null;
  errorMessage: string | null;
  /** Attempts of the failing step (the error context), else of the whole item. */
  attempts: number;
  provider: string | null;
  model: string | null;
  tier: number | null;
  firstErrorAt: string | null;
  lastErrorAt: string | null;
  startedAt: string;
  finishedAt: string;
}

export const DEAD_LETTER_COLUMNS: readonly (keyof DeadLetterRow)[] = [
  'batchId',
  'itemId',
  'status',
  'errorType',
  'errorMessage',
  'attempts',
  'provider',
  'model',
  'tier',
  'firstErrorAt',
  'lastErrorAt',
  'startedAt',
  'finishedAt',
];

export function deadLetterRow(r: ResultRecord): DeadLetterRow {
  const e = r.error;
  return {
    batchId: r.batchId,
    itemId: r.itemId,
    status: r.status,
    errorType: e?.type ?? null,
    errorMessage: e?.message ?? null,
    attempts: e?.attempts ?? r.attempts,
    provider: e?.provider ?? r.provider,
    model: r.model,
    tier: r.tier,
    firstErrorAt: e?.firstAt ?? null,
    lastErrorAt: e?.lastAt ?? null,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  };
}

/** A scalar cell: empty for null, the text itself for strings. */
function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : String(v);
}

/** A JSON cell: empty for null, else JSON (so a text output `"a,b"` and an object read back alike). */
function jsonCell(v: unknown): string {
  return v === null || v === undefined ? '' : JSON.stringify(v);
}

export function resultCells(r: ResultRecord): string[] {
  return [
    r.batchId,
    r.itemId,
    r.status,
    cell(r.provider),
    cell(r.model),
    cell(r.tier),
    cell(r.attempts),
    cell(r.inputTokens),
    cell(r.outputTokens),
    cell(r.costUsd),
    r.startedAt,
    r.finishedAt,
    cell(r.error?.type),
    jsonCell(r.output),
    jsonCell(r.error),
    jsonCell(r.truncation),
  ];
}

/** Options of {@link ExportWriter}. */
export interface ExportOptions {
  format: ExportFormat;
  /** The dead-letter list instead of every row. */
  failed: boolean;
  /** Multi-step pipelines: one step's results per item instead of whole rows. */
  step?: string | undefined;
}

/** What a CSV export shows of each step, as `<step>.<field>` columns after the row's own. */
export const STEP_FIELDS = ['status', 'provider', 'model', 'tier', 'attempts', 'inputTokens', 'outputTokens', 'costUsd', 'output'] as const;

/** Columns of `export --step NAME` (CSV, and the keys of each JSONL line). */
export const STEP_COLUMNS = ['batchId', 'itemId', 'itemStatus', 'step', ...STEP_FIELDS, 'errorType'] as const;

/** The step names in the rows, in order of first appearance (a step no item reached does not appear). */
export function stepNamesOf(records: readonly ResultRecord[]): string[] {
  const names: string[] = [];
  for (const r of records) for (const st of r.steps ?? []) if (!names.includes(st.name)) names.push(st.name);
  return names;
}

/** One step of a row as `export --step` writes it; null when the item did not reach the step. */
export function stepRow(r: ResultRecord, step: string): Record<(typeof STEP_COLUMNS)[number], unknown> | null {
  const st = r.steps?.find((x) => x.name === step);
  if (!st) return null;
  return {
    batchId: r.batchId,
    itemId: r.itemId,
    itemStatus: r.status,
    step,
    status: st.status,
    provider: st.provider,
    model: st.model,
    tier: st.tier,
    attempts: st.attempts,
    inputTokens: st.inputTokens,
    outputTokens: st.outputTokens,
    costUsd: st.costUsd,
    output: st.output,
    errorType: st.errorType,
  };
}

function stepCells(r: ResultRecord, names: readonly string[]): string[] {
  return names.flatMap((n) => {
    const st = r.steps?.find((x) => x.name === n);
    return STEP_FIELDS.map((f) => (st ? (f === 'output' ? jsonCell(st.output) : cell(st[f])) : ''));
  });
}

/** Turns records into lines (each ending in `\n`); CSV starts with a header. */
export class ExportWriter {
  readonly options: ExportOptions;
  private headerDone = false;
  /** Step columns of a CSV export of a multi-step batch (from the first page of rows). */
  private stepNames: string[] = [];

  constructor(options: ExportOptions) {
    this.options = options;
  }

  /**
   * The header line (CSV) or nothing (JSONL); written even when there are no rows. A full
   * CSV export adds `<step>.<field>` columns for the steps `first` (the first page) holds.
   */
  header(first: readonly ResultRecord[] = []): string {
    if (this.headerDone || this.options.format !== 'csv') return '';
    this.headerDone = true;
    if (this.options.step !== undefined) return `${csvRow(STEP_COLUMNS)}\n`;
    if (this.options.failed) return `${csvRow(DEAD_LETTER_COLUMNS)}\n`;
    this.stepNames = stepNamesOf(first);
    return `${csvRow([...RESULT_COLUMNS, ...this.stepNames.flatMap((n) => STEP_FIELDS.map((f) => `${n}.${f}`))])}\n`;
  }

  /** Lines for some records, the header first if not yet written. */
  lines(records: readonly ResultRecord[]): string {
    let out = this.header(records);
    for (const r of records) {
      if (this.options.step !== undefined) {
        const row = stepRow(r, this.options.step);
        if (!row) continue;
        out += this.options.format === 'csv' ? `${csvRow(STEP_COLUMNS.map((c) => (c === 'output' ? jsonCell(row[c]) : cell(row[c]))))}\n` : `${JSON.stringify(row)}\n`;
      } else if (this.options.failed) {
        const row = deadLetterRow(r);
        out += this.options.format === 'csv' ? `${csvRow(DEAD_LETTER_COLUMNS.map((c) => cell(row[c])))}\n` : `${JSON.stringify(row)}\n`;
      } else {
        out += this.options.format === 'csv' ? `${csvRow([...resultCells(r), ...stepCells(r, this.stepNames)])}\n` : `${JSON.stringify(r)}\n`;
      }
    }
    return out;
  }
}

/** Rows read from the store per query (keyset paging by item id, so memory stays flat). */
const PAGE = 1_000;

async function write(out: Writable, text: string): Promise<void> {
  if (!text) return;
  if (!out.write(text))
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      out.once('error', onError);
      out.once('drain', () => {
        out.off('error', onError);
        resolve();
      });
    });
}

export interface ExportCommandOptions extends ExportOptions {
  /** File to write; stdout when unset or `-`. */
  out?: string;
}

/**
 * Opens the results store the CLI is configured for (loaded on demand: it pulls in
 * node:sqlite or pg, which the other commands do not need); a missing SQLite file is an
 * error rather than a new empty store.
 */
export async function openResultStore(config: Config, command = 'the export'): Promise<ResultStore> {
  if (!config.databaseUrl && config.dbPath !== ':memory:' && !existsSync(config.dbPath)) {
    throw failure(`no results store at ${config.dbPath} (STEADFAST_DB_PATH); run ${command} where the workers write, or set DATABASE_URL`);
  }
  const { openStore } = await import('../../../activities/store.ts');
  try {
    return await openStore({ databaseUrl: config.databaseUrl, dbPath: config.dbPath });
  } catch (err) {
    throw failure(`cannot open the results store (${config.databaseUrl ? 'DATABASE_URL' : config.dbPath}): ${messageOf(err)}`);
  }
}

/** A batch's rows a page at a time (keyset paging by item id, so memory stays flat). */
export async function* storePages(store: ResultStore, batchId: string, status?: readonly ItemStatus[]): AsyncGenerator<ResultRecord[]> {
  for (let after: string | undefined; ;) {
    const page = await store.list(batchId, { status, afterItemId: after, limit: PAGE });
    if (page.length > 0) yield page;
    const last = page[page.length - 1];
    if (page.length < PAGE || !last) return;
    after = last.itemId;
  }
}

/** Runs the export; returns the number of rows written. Progress notes go to `note` (stderr). */
export async function exportBatch(config: Config, batchId: string, opts: ExportCommandOptions, note: (msg: string) => void): Promise<number> {
  if (!EXPORT_FORMATS.includes(opts.format)) throw usageError(`--format ${JSON.stringify(opts.format)}: use jsonl or csv`);
  const store = await openResultStore(config);
  const toFile = opts.out !== undefined && opts.out !== '-';
  let out: Writable = process.stdout;
  if (toFile) {
    try {
      // Opened synchronously so a bad path fails here, before the store is read.
      out = createWriteStream(opts.out!, { fd: openSync(opts.out!, 'w') });
    } catch (err) {
      await store.close();
      throw failure(`cannot write ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
  }
  const writer = new ExportWriter(opts);
  let rows = 0;
  let total = 0;
  try {
    for await (const page of storePages(store, batchId, opts.failed ? DEAD_LETTER_STATUSES : undefined)) {
      if (opts.step !== undefined && rows === 0 && page.length > 0 && !page.some((r) => r.steps)) {
        throw usageError(`--step ${opts.step}: batch ${batchId} is not a multi-step pipeline (its rows have no steps)`);
      }
      await write(out, writer.lines(page));
      rows += page.length;
    }
    await write(out, writer.header());
    if (rows === 0 && opts.failed) total = await store.count(batchId);
  } finally {
    await store.close();
    if (toFile) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
  if (rows === 0) {
    note(opts.failed && total > 0 ? `batch ${batchId}: no failed, skipped or awaiting-review items among ${total} rows` : `batch ${batchId}: no rows in the results store`);
  } else if (toFile) {
    note(`${rows} row${rows === 1 ? '' : 's'} written to ${opts.out}`);
  }
  return rows;
}

/** `export <batch> --merged`: one row per item over the batch and its re-runs, with the batch each came from. */
export async function exportMerged(
  rows: readonly (ResultRecord & { fromBatch: string })[],
  format: ExportFormat,
  outFile: string | undefined,
  note: (msg: string) => void,
): Promise<number> {
  if (!EXPORT_FORMATS.includes(format)) throw usageError(`--format ${JSON.stringify(format)}: use jsonl or csv`);
  const toFile = outFile !== undefined && outFile !== '-';
  let out: Writable = process.stdout;
  if (toFile) {
    try {
      out = createWriteStream(outFile, { fd: openSync(outFile, 'w') });
    } catch (err) {
      throw failure(`cannot write ${outFile}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
  }
  try {
    if (format === 'csv') await write(out, `${csvRow([...RESULT_COLUMNS, 'fromBatch'])}\n`);
    for (let i = 0; i < rows.length; i += PAGE) {
      const text = rows
        .slice(i, i + PAGE)
        .map((r) => (format === 'csv' ? `${csvRow([...resultCells(r), r.fromBatch])}\n` : `${JSON.stringify(r)}\n`))
        .join('');
      await write(out, text);
    }
  } finally {
    if (toFile) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
  if (toFile) note(`${rows.length} row${rows.length === 1 ? '' : 's'} written to ${outFile}`);
  return rows.length;
}
