/**
 * The HTTP server: routes the OpenAI and Anthropic endpoints and the admin API to
 * the engine, and carries out its decisions (delay, hang, reset). Built on
 * node:http for throughput; keep-alive connections are tracked by Node and all
 * closed, hanging ones included, by `close()`.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { anthropicDialect } from './anthropic.ts';
import { BatchService } from './batch.ts';
import type { BatchReply } from './batch.ts';
import type { Dialect, Reply } from './dialect.ts';
import { ProviderEngine } from './engine.ts';
import type { Outcome } from './engine.ts';
import type { FaultProfile } from './faults.ts';
import { DEFAULT_MODELS, countPromptTokens } from './models.ts';
import type { ModelConfig } from './models.ts';
import { openaiDialect } from './openai.ts';
import { resolveProfile } from './profiles.ts';
import type { ProviderStats } from './stats.ts';

/** Options of {@link startProvider}. */
export interface ProviderOptions {
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Built-in name (optionally with parameters, e.g. `outage:model=gpt-4o`), JSON text or object. @default 'none' */
  profile?: string | FaultProfile;
  /** Fixes every fault decision and jitter. @default 0 */
  seed?: number;
  /** @default DEFAULT_MODELS */
  models?: ModelConfig[];
  /** When set, requests carrying another key get 401. */
  apiKey?: string;
  /** Multiplies model latencies; 0 removes latency. @default 1 */
  latencyScale?: number;
  /** Shortest prompt prefix (tokens) the prompt cache keeps. @default 1024 */
  cacheMinTokens?: number;
  /** Clock for outages and rate limits (tests). @default Date.now */
  now?: () => number;
}

/** A started provider. */
export interface RunningProvider {
  /** e.g. `http://127.0.0.1:PORT`; OpenAI clients use `${url}/v1`, Anthropic clients `url`. */
  url: string;
  port: number;
  /** Stops listening and destroys every connection, hanging ones included. */
  close(): Promise<void>;
  stats(): ProviderStats;
  /** Switches profile; throws on an unknown or invalid profile. */
  setProfile(p: string | FaultProfile): void;
  /** Marks a model down (503/529 on every call) or up again. */
  setModelDown(model: string, down: boolean): void;
  /** Clears counters, attempt memory and rate-limit buckets. */
  reset(): void;
  /** Moves the provider's clock forward by `ms` (same as `POST /admin/clock {"advanceMs": ms}`); returns the new epoch ms. */
  advanceClock(ms: number): number;
}

/** Response header on every answer of this provider: clients record the answer as simulated. */
export const SIMULATED_HEADER = 'x-steadfast-simulated';

/** Largest accepted request body. */
const MAX_BODY = 32 * 1024 * 1024;
/** Largest body of a batch upload or batch creation: above both vendors' limits, so those answer with their own 400. */
const MAX_BATCH_BODY = 260 * 1024 * 1024;

function isBatchPath(path: string): boolean {
  return path === '/v1/files' || path.startsWith('/v1/files/') || path === '/v1/batches' || path.startsWith('/v1/batches/') || path.startsWith('/v1/messages/batches');
}

function sendBatch(res: ServerResponse, r: BatchReply): void {
  if (r.type === 'json') return send(res, r.reply);
  if (r.type === 'reset') return void res.socket?.destroy();
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(r.status, { 'content-type': r.contentType, 'content-length': Buffer.byteLength(r.text), [SIMULATED_HEADER]: 'true' });
  res.end(r.text);
}

function send(res: ServerResponse, r: Reply): void {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(r.body);
  // Every answer says it is simulated, so a client pointed here by URL records it as such.
  res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), [SIMULATED_HEADER]: 'true', ...r.headers });
  res.end(text);
}

function json(status: number, body: unknown): Reply {
  return { status, headers: {}, body };
}

function carryOut(o: Outcome, req: IncomingMessage, res: ServerResponse, engine: ProviderEngine): void {
  if (o.type === 'reset') {
    req.socket.destroy();
    return;
  }
  const deliver = (): void => {
    if (res.destroyed || res.writableEnded) return;
    send(res, o.reply);
    // Only chat answers are counted, so byStatus adds up with requests, resets and hangs.
    engine.recordStatus(o.reply.status);
    o.onSent?.();
  };
  const ms = o.type === 'hang' ? o.ms : o.delayMs;
  if (ms < 1) return deliver();
  if (o.type === 'hang') engine.openHangs++;
  const timer = setTimeout(deliver, ms);
  // A client that gives up (timeout) or a server close releases the timer and the hang slot.
  res.once('close', () => {
    clearTimeout(timer);
    if (o.type === 'hang') engine.openHangs--;
  });
}

function admin(method: string, path: string, body: string, engine: ProviderEngine): Reply {
  if (method === 'GET' && path === '/admin/stats') return json(200, engine.stats());
  if (method === 'POST' && path === '/admin/reset') {
    engine.reset();
    return json(200, { ok: true });
  }
  if (method === 'POST' && path === '/admin/profile') {
    let input: unknown = body;
    try {
      input = JSON.parse(body);
    } catch {
      // Plain text: a profile name such as `flaky` or `outage:model=gpt-4o`.
    }
    try {
      const profile = resolveProfile(typeof input === 'string' ? input : (input as FaultProfile));
      engine.setProfile(profile);
      return json(200, { ok: true, profile });
    } catch (err) {
      return json(400, { error: err instanceof Error ? err.message : String(err) });
    }
  }
  if (method === 'POST' && path === '/admin/clock') {
    // Moves the provider's clock: a batch that must stay in progress for hours ends without waiting.
    try {
      const parsed = JSON.parse(body || '{}') as { advanceMs?: unknown };
      const now = engine.advanceClock(Number(parsed.advanceMs ?? 0));
      return json(200, { ok: true, now: new Date(now).toISOString() });
    } catch (err) {
      return json(400, { error: err instanceof Error ? err.message : String(err) });
    }
  }
  const m = /^\/admin\/models\/(.+)\/(down|up)$/.exec(path);
  if (method === 'POST' && m?.[1] && m[2]) {
    const model = decodeURIComponent(m[1]);
    engine.setModelDown(model, m[2] === 'down');
    return json(200, { ok: true, model, down: m[2] === 'down' });
  }
  return json(404, { error: `no admin route ${method} ${path}` });
}

function route(req: IncomingMessage, res: ServerResponse, body: string, engine: ProviderEngine): void {
  const method = req.method ?? 'GET';
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const dialect: Dialect = path.startsWith('/v1/messages') || req.headers['anthropic-version'] !== undefined ? anthropicDialect : openaiDialect;
  const notFound = (): void => send(res, dialect.error('not_found', { requestId: engine.nextRequestId(), message: `Unknown route ${method} ${path}` }));
  if (path.startsWith('/admin/')) return send(res, admin(method, path, body, engine));
  const chat = method === 'POST' && path === '/v1/chat/completions' ? openaiDialect : method === 'POST' && path === '/v1/messages' ? anthropicDialect : null;
  if (chat) {
    const done = engine.openRequest();
    res.once('finish', done);
    res.once('close', done);
    return carryOut(engine.handleChat(chat, body, req.headers), req, res, engine);
  }
  if (method === 'POST' && path === '/v1/messages/count_tokens') {
    const parsed = (() => {
      try {
        return anthropicDialect.parse({ max_tokens: 1, ...(JSON.parse(body) as object) });
      } catch {
        return { error: 'We could not parse the JSON body of your request.' };
      }
    })();
    if ('error' in parsed) return send(res, anthropicDialect.error('bad_request', { requestId: engine.nextRequestId(), message: parsed.error }));
    return send(res, json(200, { input_tokens: countPromptTokens(parsed.texts) }));
  }
  if (method === 'GET' && path === '/v1/models') return send(res, json(200, dialect.modelList(engine.listModels())));
  const one = /^\/v1\/models\/(.+)$/.exec(path);
  if (method === 'GET' && one?.[1]) {
    const id = decodeURIComponent(one[1]);
    const list = dialect.modelList(engine.listModels().filter((m) => m.id === id)) as { data: unknown[] };
    if (list.data[0]) return send(res, json(200, list.data[0]));
    return send(res, dialect.error('model_not_found', { requestId: engine.nextRequestId(), model: id }));
  }
  if (method === 'GET' && (path === '/health' || path === '/')) return send(res, json(200, { ok: true }));
  return notFound();
}

/** Starts the fault-injecting provider and resolves once it listens. */
export async function startProvider(opts: ProviderOptions = {}): Promise<RunningProvider> {
  const engine = new ProviderEngine({
    profile: resolveProfile(opts.profile ?? 'none'),
    seed: opts.seed ?? 0,
    models: opts.models ?? DEFAULT_MODELS,
    ...(opts.apiKey !== undefined ? { apiKey: opts.apiKey } : {}),
    latencyScale: opts.latencyScale ?? 1,
    ...(opts.cacheMinTokens !== undefined ? { cacheMinTokens: opts.cacheMinTokens } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const batches = new BatchService(engine);
  // A provider bug must not look like an injected fault: say so in the body.
  const bug = (res: ServerResponse, err: unknown): void =>
    send(res, json(500, { error: { message: `steadfast provider bug: ${err instanceof Error ? err.message : String(err)}`, type: 'server_error', param: null, code: null } }));
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const batchPath = isBatchPath(path);
    const limit = batchPath ? MAX_BATCH_BODY : MAX_BODY;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => {
      if (size > limit) return send(res, json(413, { error: { message: 'Request body too large.', type: 'invalid_request_error', param: null, code: null } }));
      const raw = Buffer.concat(chunks);
      if (batchPath) {
        // The host the client used, so results_url points back at this server as the client reached it.
        const base = `http://${req.headers.host ?? '127.0.0.1'}`;
        batches.route(req.method ?? 'GET', path, req.headers, raw, base, new URLSearchParams((req.url ?? '').split('?')[1] ?? '')).then(
          (r) => (r ? sendBatch(res, r) : bug(res, new Error(`no batch route for ${path}`))),
          (err: unknown) => bug(res, err),
        );
        return;
      }
      try {
        route(req, res, raw.toString('utf8'), engine);
      } catch (err) {
        bug(res, err);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    stats: () => engine.stats(),
    setProfile: (p) => engine.setProfile(resolveProfile(p)),
    setModelDown: (model, down) => engine.setModelDown(model, down),
    reset: () => engine.reset(),
    advanceClock: (ms) => engine.advanceClock(ms),
  };
}
