/**
 * The vendors' batch endpoints: the OpenAI Files and Batch APIs (`/v1/files`,
 * `/v1/batches`) and Anthropic Message Batches (`/v1/messages/batches`).
 *
 * Every request of a batch is answered by the engine when the batch is created,
 * exactly as the synchronous call with the same identity would be (same answer,
 * tokens and faults, the `[[fault:...]]` directive included), minus the rate
 * limiter, and priced at the batch discount. The answers are revealed when the
 * batch ends, `batch.latencyMs` of the provider's clock after creation, so a test
 * that drives the clock sees a batch stay in progress without sleeping.
 *
 * Batch-level faults are seeded: whether a batch expires hashes (seed, batch
 * input); which of its requests were answered before it expired hashes (seed,
 * batch input, custom_id). The same seed and input give the same outcome.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { anthropicDialect } from './anthropic.ts';
import { isRecord } from './dialect.ts';
import type { Api, Dialect, Reply } from './dialect.ts';
import type { ProviderEngine } from './engine.ts';
import type { BatchFaults } from './faults.ts';
import { hashHex, unitHash } from './hash.ts';
import { openaiDialect } from './openai.ts';
import { StatsCounter } from './stats.ts';

/** An answer of a batch endpoint: JSON, or raw file content. */
export type BatchReply = { type: 'json'; reply: Reply } | { type: 'raw'; status: number; contentType: string; text: string } | { type: 'reset' };

/** The vendors' limits and defaults, used when the profile does not set them. */
export const BATCH_DEFAULTS = {
  latencyMs: 200,
  expireAnswered: 0.5,
  openai: { maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 },
  anthropic: { maxRequests: 100_000, maxBytes: 256 * 1024 * 1024 },
} as const;

/** Endpoints a batch may target here (the provider answers chat only). */
const OPENAI_ENDPOINTS = ['/v1/chat/completions'];
const OPENAI_PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'];
const CUSTOM_ID_RE = /^[a-zA-Z0-9_-]{1,64}$/;
const DAY_MS = 24 * 3600 * 1000;

interface StoredFile {
  id: string;
  filename: string;
  purpose: string;
  bytes: number;
  createdAt: number;
  text: string;
}

/** One request's fate, decided at creation and revealed when the batch ends. */
interface Line {
  customId: string;
  /** The engine's HTTP answer, or undefined when the request is never run (expired, canceled). */
  status?: number;
  body?: unknown;
  requestId?: string;
  onSent?: () => void;
  /** Seeded rank: the requests with the lowest ranks finish first. */
  rank: number;
}

interface Batch {
  api: Api;
  id: string;
  createdAt: number;
  endsAt: number;
  expires: boolean;
  expireAnswered: number;
  lines: Line[];
  /** When a cancel arrived, if one did. */
  cancelAt?: number;
  /** Set once the batch ended: the final state, computed once. */
  ended?: { status: 'completed' | 'expired' | 'cancelled'; at: number; answered: Set<string> };
  // OpenAI only
  inputFileId?: string;
  endpoint?: string;
  completionWindow?: string;
  model?: string;
  metadata?: unknown;
  outputFileId?: string | null;
  errorFileId?: string | null;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): BatchReply {
  return { type: 'json', reply: { status, headers, body } };
}

function fromReply(reply: Reply): BatchReply {
  return { type: 'json', reply };
}

const sec = (ms: number): number => Math.floor(ms / 1000);
const rfc3339 = (ms: number): string => new Date(ms).toISOString();

/** The store and logic behind the batch endpoints of one provider. */
export class BatchService {
  private readonly engine: ProviderEngine;
  private files = new Map<string, StoredFile>();
  private batches = new Map<string, Batch>();
  private seq = 0;

  constructor(engine: ProviderEngine) {
    this.engine = engine;
  }

  private cfg(): BatchFaults {
    return this.engine.currentProfile().batch ?? {};
  }

  private newId(prefix: string, kind: string): string {
    return `${prefix}${hashHex(kind, this.engine.seed, ++this.seq).slice(0, 24)}`;
  }

  private oaiError(status: number, message: string, param: string | null = null, code: string | null = null, type = 'invalid_request_error'): BatchReply {
    return json(status, { error: { message, type, param, code } });
  }

  private anthError(status: number, type: string, message: string): BatchReply {
    return json(status, { type: 'error', error: { type, message }, request_id: this.engine.nextRequestId() });
  }

  /** Routes a batch or file endpoint; undefined when the path is not one of them. */
  async route(method: string, path: string, headers: IncomingHttpHeaders, raw: Buffer, baseUrl: string, query = new URLSearchParams()): Promise<BatchReply | undefined> {
    if (path === '/v1/files' || path.startsWith('/v1/files/') || path === '/v1/batches' || path.startsWith('/v1/batches/')) {
      const denied = this.engine.rejectKey(openaiDialect, headers);
      if (denied) return fromReply(denied);
      return this.openai(method, path, headers, raw);
    }
    if (path === '/v1/messages/batches' || path.startsWith('/v1/messages/batches/')) {
      const denied = this.engine.rejectKey(anthropicDialect, headers);
      if (denied) return fromReply(denied);
      return this.anthropic(method, path, raw, baseUrl, query);
    }
    return undefined;
  }

  /** The `createErrors` fault: the first creations after the profile became active fail and create nothing. */
  private createFault(api: Api): BatchReply | undefined {
    const n = this.engine.createsSinceProfile;
    if (n >= (this.cfg().createErrors ?? 0)) return undefined;
    this.engine.createsSinceProfile++;
    const c = this.engine.counters().batches;
    c.createErrors = (c.createErrors ?? 0) + 1;
    return api === 'openai'
      ? this.oaiError(500, 'The server had an error while processing your request. Sorry about that!', null, null, 'server_error')
      : this.anthError(529, 'overloaded_error', 'Overloaded');
  }

  /** The `createLostReplies` fault: a batch that was created answers with a dropped connection. */
  private lostReply(r: BatchReply): BatchReply {
    const n = this.engine.createsSinceProfile++;
    const cfg = this.cfg();
    const created = r.type === 'json' && r.reply.status === 200;
    if (!created || n - (cfg.createErrors ?? 0) >= (cfg.createLostReplies ?? 0)) return r;
    const c = this.engine.counters().batches;
    c.createLostReplies = (c.createLostReplies ?? 0) + 1;
    return { type: 'reset' };
  }

  // ---- OpenAI ----

  private async openai(method: string, path: string, headers: IncomingHttpHeaders, raw: Buffer): Promise<BatchReply> {
    if (method === 'POST' && path === '/v1/files') return this.upload(headers, raw);
    if (method === 'GET' && path === '/v1/files') {
      const data = [...this.files.values()].map((f) => this.fileObject(f));
      return json(200, { object: 'list', data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
    }
    const file = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(path);
    if (file?.[1]) {
      const f = this.files.get(decodeURIComponent(file[1]));
      if (!f) return this.oaiError(404, `No such File object: ${file[1]}`, 'id');
      if (method === 'GET' && file[2]) return { type: 'raw', status: 200, contentType: 'application/octet-stream', text: f.text };
      if (method === 'GET') return json(200, this.fileObject(f));
      if (method === 'DELETE') {
        this.files.delete(f.id);
        return json(200, { id: f.id, object: 'file', deleted: true });
      }
    }
    if (method === 'POST' && path === '/v1/batches') return this.createFault('openai') ?? this.lostReply(this.createOpenai(raw.toString('utf8')));
    if (method === 'GET' && path === '/v1/batches') {
      const data = [...this.batches.values()].filter((b) => b.api === 'openai').map((b) => this.openaiObject(b));
      data.reverse();
      return json(200, { object: 'list', data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
    }
    const one = /^\/v1\/batches\/([^/]+)(\/cancel)?$/.exec(path);
    if (one?.[1]) {
      const b = this.batches.get(decodeURIComponent(one[1]));
      if (!b || b.api !== 'openai') return this.oaiError(404, `No batch found with id '${one[1]}'.`, 'batch_id');
      if (method === 'GET' && !one[2]) return json(200, this.openaiObject(b));
      if (method === 'POST' && one[2]) {
        const state = this.settle(b);
        if (state.ended || b.cancelAt !== undefined) return this.oaiError(409, `Cannot cancel a batch with status '${this.openaiStatus(b)}'.`);
        b.cancelAt = this.engine.clock();
        return json(200, this.openaiObject(b));
      }
    }
    return this.oaiError(404, `Unknown route ${method} ${path}`);
  }

  private fileObject(f: StoredFile): Record<string, unknown> {
    return {
      id: f.id,
      object: 'file',
      bytes: f.bytes,
      created_at: sec(f.createdAt),
      filename: f.filename,
      purpose: f.purpose,
      status: 'processed',
      status_details: null,
      expires_at: null,
    };
  }

  private async upload(headers: IncomingHttpHeaders, raw: Buffer): Promise<BatchReply> {
    const c = this.engine.counters().batches;
    const n = this.engine.uploadsSinceProfile++;
    if (n < (this.cfg().fileUploadErrors ?? 0)) {
      c.fileUploadErrors++;
      return this.oaiError(500, 'The server had an error while processing your request. Sorry about that!', null, null, 'server_error');
    }
    const type = headers['content-type'] ?? '';
    if (!type.startsWith('multipart/form-data')) return this.oaiError(400, "Expected a multipart/form-data body with 'file' and 'purpose'.", 'file');
    let form: FormData;
    try {
      // The platform's own multipart parser (undici), rather than a hand-written one.
      form = await new Request('http://provider.local/v1/files', { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(raw) }).formData();
    } catch (err) {
      return this.oaiError(400, `The multipart body does not parse: ${err instanceof Error ? err.message : String(err)}`, 'file');
    }
    const purpose = form.get('purpose');
    const file = form.get('file');
    if (typeof purpose !== 'string' || !purpose) return this.oaiError(400, "Missing required parameter: 'purpose'.", 'purpose');
    if (!OPENAI_PURPOSES.includes(purpose))
      return this.oaiError(400, `Invalid value for 'purpose': '${purpose}'. Supported values are: ${OPENAI_PURPOSES.map((p) => `'${p}'`).join(', ')}.`, 'purpose');
    if (file === null || typeof file === 'string') return this.oaiError(400, "Missing required parameter: 'file'.", 'file');
    const bytes = file.size;
    const max = this.cfg().maxBytes ?? BATCH_DEFAULTS.openai.maxBytes;
    if (purpose === 'batch' && bytes > max) return this.oaiError(400, `File is too large: ${bytes} bytes; the limit for purpose 'batch' is ${max} bytes.`, 'file');
    if (purpose === 'batch' && !file.name.endsWith('.jsonl')) return this.oaiError(400, `Invalid file format for Batch API: '${file.name}'. Must be .jsonl`, 'file');
    const f: StoredFile = { id: this.newId('file-', 'file'), filename: file.name, purpose, bytes, createdAt: this.engine.clock(), text: await file.text() };
    this.files.set(f.id, f);
    c.fileUploads++;
    return json(200, this.fileObject(f));
  }

  private createOpenai(text: string): BatchReply {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return this.oaiError(400, 'We could not parse the JSON body of your request.');
    }
    if (!isRecord(body)) return this.oaiError(400, 'The request body must be a JSON object.');
    const fileId = body['input_file_id'];
    const endpoint = body['endpoint'];
    const window = body['completion_window'];
    if (typeof fileId !== 'string' || !fileId) return this.oaiError(400, "Missing required parameter: 'input_file_id'.", 'input_file_id');
    if (typeof endpoint !== 'string') return this.oaiError(400, "Missing required parameter: 'endpoint'.", 'endpoint');
    if (!OPENAI_ENDPOINTS.includes(endpoint))
      return this.oaiError(400, `Invalid value for 'endpoint': '${endpoint}'. This provider batches ${OPENAI_ENDPOINTS.join(', ')} only.`, 'endpoint');
    if (window !== '24h') return this.oaiError(400, `Invalid value for 'completion_window': ${JSON.stringify(window)}. Supported values are: '24h'.`, 'completion_window');
    const file = this.files.get(fileId);
    if (!file) return this.oaiError(404, `No such File object: ${fileId}`, 'input_file_id');
    if (file.purpose !== 'batch') return this.oaiError(400, `The file ${fileId} has purpose '${file.purpose}'; a batch needs purpose 'batch'.`, 'input_file_id');

    // Validate every line before anything runs: a bad file loses nothing and names its line.
    const max = this.cfg().maxRequests ?? BATCH_DEFAULTS.openai.maxRequests;
    const rows: Array<{ customId: string; body: Record<string, unknown> }> = [];
    const seen = new Set<string>();
    let model: string | undefined;
    const lines = file.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const lineText = lines[i]?.trim() ?? '';
      if (!lineText) continue;
      const at = `line ${i + 1}`;
      let row: unknown;
      try {
        row = JSON.parse(lineText);
      } catch {
        return this.oaiError(400, `Invalid JSON on ${at} of ${fileId}.`, 'input_file_id', 'invalid_json_line');
      }
      if (!isRecord(row)) return this.oaiError(400, `${at}: each line must be a JSON object.`, 'input_file_id', 'invalid_json_line');
      const customId = row['custom_id'];
      if (typeof customId !== 'string' || !customId) return this.oaiError(400, `${at}: missing 'custom_id'.`, 'custom_id', 'missing_required_parameter');
      if (seen.has(customId)) {
        return this.oaiError(
          400,
          `${at}: the custom_id '${customId}' is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.`,
          'custom_id',
          'duplicate_custom_id',
        );
      }
      seen.add(customId);
      if (row['method'] !== 'POST') return this.oaiError(400, `${at}: 'method' must be 'POST', got ${JSON.stringify(row['method'])}.`, 'method', 'invalid_method');
      if (row['url'] !== endpoint)
        return this.oaiError(400, `${at}: 'url' ${JSON.stringify(row['url'])} does not match the batch endpoint '${endpoint}'.`, 'url', 'mismatched_endpoint');
      const reqBody = row['body'];
      if (!isRecord(reqBody)) return this.oaiError(400, `${at}: missing 'body' object.`, 'body', 'missing_required_parameter');
      const m = typeof reqBody['model'] === 'string' ? reqBody['model'] : undefined;
      if (model !== undefined && m !== undefined && m !== model) {
        return this.oaiError(400, `${at}: model '${m}' differs from '${model}'; every request of a batch must use the same model.`, 'body.model', 'mismatched_model');
      }
      model ??= m;
      rows.push({ customId, body: reqBody });
      if (rows.length > max) return this.oaiError(400, `${fileId} has more than ${max} requests, the most one batch may hold.`, 'input_file_id', 'too_many_requests');
    }
    if (rows.length === 0) return this.oaiError(400, `${fileId} holds no requests.`, 'input_file_id', 'empty_file');

    const b = this.create('openai', 'batch_', openaiDialect, file.text, rows);
    b.inputFileId = fileId;
    b.endpoint = endpoint;
    b.completionWindow = window;
    b.model = model;
    b.metadata = isRecord(body['metadata']) ? body['metadata'] : null;
    return json(200, this.openaiObject(b, 'validating'));
  }

  private openaiStatus(b: Batch): string {
    const s = this.settle(b);
    if (s.ended) return s.ended.status;
    return b.cancelAt !== undefined ? 'cancelling' : 'in_progress';
  }

  private openaiObject(b: Batch, forced?: string): Record<string, unknown> {
    const s = this.settle(b);
    const status = forced ?? this.openaiStatus(b);
    const ended = forced ? undefined : s.ended;
    let completed = 0;
    let failed = 0;
    if (ended) {
      for (const l of b.lines) {
        if (ended.answered.has(l.customId) && l.status !== undefined && l.status < 300) completed++;
        else failed++;
      }
    }
    return {
      id: b.id,
      object: 'batch',
      endpoint: b.endpoint,
      model: b.model ?? null,
      errors: null,
      input_file_id: b.inputFileId,
      completion_window: b.completionWindow,
      status,
      output_file_id: ended ? (b.outputFileId ?? null) : null,
      error_file_id: ended ? (b.errorFileId ?? null) : null,
      created_at: sec(b.createdAt),
      in_progress_at: status === 'validating' ? null : sec(b.createdAt),
      expires_at: sec(b.createdAt + DAY_MS),
      finalizing_at: ended?.status === 'completed' ? sec(ended.at) : null,
      completed_at: ended?.status === 'completed' ? sec(ended.at) : null,
      failed_at: null,
      expired_at: ended?.status === 'expired' ? sec(ended.at) : null,
      cancelling_at: b.cancelAt !== undefined ? sec(b.cancelAt) : null,
      cancelled_at: ended?.status === 'cancelled' ? sec(ended.at) : null,
      request_counts: { total: b.lines.length, completed, failed },
      metadata: b.metadata ?? null,
    };
  }

  /** Writes the output and error files of an ended OpenAI batch. */
  private openaiFiles(b: Batch, status: 'completed' | 'expired' | 'cancelled', answered: Set<string>, at: number): void {
    const out: string[] = [];
    const errs: string[] = [];
    for (const l of b.lines) {
      const id = `batch_req_${hashHex('batch_req', b.id, l.customId).slice(0, 24)}`;
      if (answered.has(l.customId) && l.status !== undefined) {
        const line = JSON.stringify({ id, custom_id: l.customId, response: { status_code: l.status, request_id: l.requestId ?? '', body: l.body }, error: null });
        (l.status < 300 ? out : errs).push(line);
      } else {
        const [code, message] =
          status === 'expired'
            ? ['batch_expired', 'This request could not be executed before the completion window expired.']
            : ['batch_cancelled', 'This request was not executed because the batch was cancelled.'];
        errs.push(JSON.stringify({ id, custom_id: l.customId, response: null, error: { code, message } }));
      }
    }
    const write = (lines: string[], name: string): string | null => {
      if (lines.length === 0) return null;
      const text = `${lines.join('\n')}\n`;
      const f: StoredFile = { id: this.newId('file-', 'file'), filename: name, purpose: 'batch_output', bytes: Buffer.byteLength(text), createdAt: at, text };
      this.files.set(f.id, f);
      return f.id;
    };
    b.outputFileId = write(out, `${b.id}_output.jsonl`);
    b.errorFileId = write(errs, `${b.id}_error.jsonl`);
  }

  // ---- Anthropic ----

  private anthropic(method: string, path: string, raw: Buffer, baseUrl: string, query: URLSearchParams): BatchReply {
    if (method === 'POST' && path === '/v1/messages/batches') return this.createFault('anthropic') ?? this.lostReply(this.createAnthropic(raw, baseUrl));
    if (method === 'GET' && path === '/v1/messages/batches') return this.listAnthropic(query, baseUrl);
    const one = /^\/v1\/messages\/batches\/([^/]+)(\/cancel|\/results)?$/.exec(path);
    if (one?.[1]) {
      const b = this.batches.get(decodeURIComponent(one[1]));
      if (!b || b.api !== 'anthropic') return this.anthError(404, 'not_found_error', `message_batch_id: no batch '${one[1]}'`);
      if (method === 'GET' && !one[2]) return json(200, this.anthropicObject(b, baseUrl));
      if (method === 'POST' && one[2] === '/cancel') {
        const s = this.settle(b);
        if (!s.ended && b.cancelAt === undefined) b.cancelAt = this.engine.clock();
        return json(200, this.anthropicObject(b, baseUrl));
      }
      if (method === 'GET' && one[2] === '/results') {
        const ended = this.settle(b).ended;
        if (!ended)
          return this.anthError(
            400,
            'invalid_request_error',
            `Batch '${b.id}' is still ${b.cancelAt !== undefined ? 'canceling' : 'in_progress'}; its results are available once it has ended.`,
          );
        const lines = b.lines.map((l) => JSON.stringify({ custom_id: l.customId, result: this.anthropicResult(l, ended) }));
        return { type: 'raw', status: 200, contentType: 'application/binary', text: `${lines.join('\n')}\n` };
      }
    }
    return this.anthError(404, 'not_found_error', `Unknown route ${method} ${path}`);
  }

  /**
   * `GET /v1/messages/batches`: newest first, `limit` per page (default 20, 1 to 1000),
   * cursors `after_id` (the page of older batches right after that one) and `before_id` (the
   * page of newer ones right before it); `has_more` says whether more lie in that direction.
   */
  private listAnthropic(query: URLSearchParams, baseUrl: string): BatchReply {
    const bad = (message: string): BatchReply => this.anthError(400, 'invalid_request_error', message);
    const rawLimit = query.get('limit');
    const limit = rawLimit === null ? 20 : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad(`limit: Input should be an integer from 1 to 1000, got ${JSON.stringify(rawLimit)}`);
    const after = query.get('after_id');
    const before = query.get('before_id');
    if (after !== null && before !== null) return bad('before_id and after_id cannot both be given');
    const all = [...this.batches.values()].filter((b) => b.api === 'anthropic').reverse();
    const at = (id: string): number => all.findIndex((b) => b.id === id);
    let page: Batch[];
    let hasMore: boolean;
    if (before !== null) {
      const i = at(before);
      if (i < 0) return bad(`before_id: no message batch '${before}'`);
      page = all.slice(Math.max(0, i - limit), i);
      hasMore = i - limit > 0;
    } else {
      const start = after === null ? 0 : at(after) + 1;
      if (after !== null && start === 0) return bad(`after_id: no message batch '${after}'`);
      page = all.slice(start, start + limit);
      hasMore = start + limit < all.length;
    }
    const data = page.map((b) => this.anthropicObject(b, baseUrl));
    return json(200, { data, has_more: hasMore, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null });
  }

  private anthropicResult(l: Line, ended: NonNullable<Batch['ended']>): unknown {
    if (!ended.answered.has(l.customId) || l.status === undefined) return { type: ended.status === 'cancelled' ? 'canceled' : 'expired' };
    if (l.status < 300) return { type: 'succeeded', message: l.body };
    return { type: 'errored', error: l.body };
  }

  private createAnthropic(raw: Buffer, baseUrl: string): BatchReply {
    const bad = (message: string): BatchReply => this.anthError(400, 'invalid_request_error', message);
    const max = this.cfg().maxBytes ?? BATCH_DEFAULTS.anthropic.maxBytes;
    if (raw.length > max) return this.anthError(413, 'request_too_large', `Request exceeds the maximum allowed number of bytes (${max}).`);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return bad('We could not parse the JSON body of your request.');
    }
    if (!isRecord(body) || !Array.isArray(body['requests'])) return bad('requests: Field required');
    const requests = body['requests'];
    if (requests.length === 0) return bad('requests: List should have at least 1 item after validation, not 0');
    const maxRequests = this.cfg().maxRequests ?? BATCH_DEFAULTS.anthropic.maxRequests;
    if (requests.length > maxRequests) return bad(`requests: a batch holds at most ${maxRequests} requests, got ${requests.length}`);
    const rows: Array<{ customId: string; body: Record<string, unknown> }> = [];
    const seen = new Set<string>();
    for (const [i, r] of requests.entries()) {
      if (!isRecord(r)) return bad(`requests.${i}: Input should be an object`);
      const customId = r['custom_id'];
      if (typeof customId !== 'string') return bad(`requests.${i}.custom_id: Field required`);
      if (!CUSTOM_ID_RE.test(customId)) return bad(`requests.${i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
      if (seen.has(customId)) return bad(`requests.${i}.custom_id: '${customId}' is a duplicate; custom_id must be unique within a batch`);
      seen.add(customId);
      if (!isRecord(r['params'])) return bad(`requests.${i}.params: Field required`);
      rows.push({ customId, body: r['params'] });
    }
    const b = this.create('anthropic', 'msgbatch_', anthropicDialect, JSON.stringify(requests), rows);
    return json(200, this.anthropicObject(b, baseUrl));
  }

  private anthropicObject(b: Batch, baseUrl: string): Record<string, unknown> {
    const ended = this.settle(b).ended;
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 };
    for (const l of b.lines) {
      if (!ended) counts.processing++;
      else {
        const t = (this.anthropicResult(l, ended) as { type: keyof typeof counts }).type;
        counts[t]++;
      }
    }
    return {
      id: b.id,
      type: 'message_batch',
      processing_status: ended ? 'ended' : b.cancelAt !== undefined ? 'canceling' : 'in_progress',
      request_counts: counts,
      ended_at: ended ? rfc3339(ended.at) : null,
      created_at: rfc3339(b.createdAt),
      expires_at: rfc3339(b.createdAt + DAY_MS),
      archived_at: null,
      cancel_initiated_at: b.cancelAt !== undefined ? rfc3339(b.cancelAt) : null,
      results_url: ended ? `${baseUrl}/v1/messages/batches/${b.id}/results` : null,
    };
  }

  // ---- shared ----

  /** Creates a batch: decides its fate and runs every request through the engine. */
  private create(api: Api, prefix: string, d: Dialect, input: string, rows: Array<{ customId: string; body: Record<string, unknown> }>): Batch {
    const cfg = this.cfg();
    const seed = this.engine.seed;
    const key = hashHex('batch_input', api, input);
    const now = this.engine.clock();
    const expires = unitHash('batch_expire', seed, key) < (cfg.expireRate ?? 0);
    const b: Batch = {
      api,
      id: this.newId(prefix, 'batch'),
      createdAt: now,
      endsAt: now + (cfg.latencyMs ?? BATCH_DEFAULTS.latencyMs),
      expires,
      expireAnswered: cfg.expireAnswered ?? BATCH_DEFAULTS.expireAnswered,
      lines: [],
    };
    const answerable = expires
      ? this.firstByRank(
          rows.map((r) => r.customId),
          seed,
          key,
          b.expireAnswered,
        )
      : undefined;
    for (const r of rows) {
      const line: Line = { customId: r.customId, rank: unitHash('batch_rank', seed, key, r.customId) };
      // Requests an expiring batch never reaches are not run: they spend no attempt and no tokens.
      if (!answerable || answerable.has(r.customId)) {
        const o = this.engine.handleChat(d, JSON.stringify(r.body), {}, true);
        // Inside a batch a dropped connection or a hang is a server-side failure or a slow answer.
        const reply = o.type === 'reset' ? d.error('server_error', { requestId: this.engine.nextRequestId() }) : o.reply;
        line.status = reply.status;
        line.body = reply.body;
        line.requestId = reply.headers[d.requestIdHeader] ?? this.engine.nextRequestId();
        if (o.type !== 'reset' && o.onSent) line.onSent = o.onSent;
      }
      b.lines.push(line);
    }
    this.batches.set(b.id, b);
    const c = this.engine.counters().batches;
    c.created++;
    c.requests += rows.length;
    StatsCounter.bump(c.byApi, api);
    return b;
  }

  /** The `share` of ids with the lowest seeded rank. */
  private firstByRank(ids: string[], seed: number, key: string, share: number): Set<string> {
    const ranked = [...ids].sort((a, b) => unitHash('batch_rank', seed, key, a) - unitHash('batch_rank', seed, key, b));
    return new Set(ranked.slice(0, Math.round(ids.length * share)));
  }

  /** Ends the batch once the clock has passed its end (or a cancel arrived); idempotent. */
  private settle(b: Batch): Batch {
    if (b.ended) return b;
    const now = this.engine.clock();
    let status: 'completed' | 'expired' | 'cancelled';
    let at: number;
    let answered: Set<string>;
    if (b.cancelAt !== undefined && b.cancelAt < b.endsAt) {
      // Cancelling takes effect at the next look; requests done by then, by seeded rank, keep their answers.
      if (now <= b.cancelAt) return b;
      status = 'cancelled';
      at = b.cancelAt;
      const share = b.endsAt > b.createdAt ? (b.cancelAt - b.createdAt) / (b.endsAt - b.createdAt) : 1;
      const done = new Set(b.lines.filter((l) => l.status !== undefined).map((l) => l.customId));
      answered = new Set(
        [...b.lines]
          .sort((x, y) => x.rank - y.rank)
          .slice(0, Math.floor(b.lines.length * share))
          .map((l) => l.customId)
          .filter((id) => done.has(id)),
      );
    } else {
      if (now < b.endsAt) return b;
      status = b.expires ? 'expired' : 'completed';
      at = b.endsAt;
      answered = new Set(b.lines.filter((l) => l.status !== undefined).map((l) => l.customId));
    }
    b.ended = { status, at, answered };
    const c = this.engine.counters();
    for (const l of b.lines) {
      if (answered.has(l.customId) && l.status !== undefined) {
        // Answered requests count in byStatus like synchronous answers, and bill (at the discount) once.
        c.byStatus[String(l.status)] = (c.byStatus[String(l.status)] ?? 0) + 1;
        l.onSent?.();
        StatsCounter.bump(c.batches.results, l.status < 300 ? 'succeeded' : 'errored');
      } else StatsCounter.bump(c.batches.results, status === 'cancelled' ? 'canceled' : 'expired');
    }
    if (b.api === 'openai') this.openaiFiles(b, status, answered, at);
    return b;
  }
}
