/**
 * The API-neutral core: decides what one chat request gets (answer, error, hang,
 * reset) and keeps the state behind that decision (attempt memory, limiter,
 * models down, counters). No sockets here, so the decision logic is testable.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { cutToTokens, expectedAnswer, notJson, plainAnswer, violateSchema } from './answers.ts';
import type { Answer, ChatRequest, Dialect, ErrorKind, Reply } from './dialect.ts';
import { FAULT_DIRECTIVE_RE, activeOutage, decideFault, forcedFault } from './faults.ts';
import type { FaultKind, FaultProfile } from './faults.ts';
import { hashHex, unitHash } from './hash.ts';
import { costOf, countPromptTokens, countTokensApprox } from './models.ts';
import type { ModelConfig } from './models.ts';
import { rateLimiter } from './ratelimit.ts';
import type { RateInfo, RateLimiter } from './ratelimit.ts';
import { StatsCounter } from './stats.ts';
import type { ProviderStats } from './stats.ts';

/** Header that forces faults for one request: comma-separated kinds, one per attempt. */
export const FAULT_HEADER = 'x-steadfast-fault';

/** Share of the synchronous price that a request inside a provider batch costs (both vendors: half). */
export const BATCH_DISCOUNT = 0.5;

/** What the server must do with one request. `onSent` records the outcome once it is written. */
export type Outcome = { type: 'reply'; reply: Reply; delayMs: number; onSent?: () => void } | { type: 'hang'; ms: number; reply: Reply; onSent?: () => void } | { type: 'reset' };

/** Options of {@link ProviderEngine}. */
export interface EngineOptions {
  profile: FaultProfile;
  seed: number;
  models: readonly ModelConfig[];
  apiKey?: string;
  latencyScale: number;
  /** A prefix shorter than this is not cached, as with the vendors. @default 1024 */
  cacheMinTokens?: number;
  /** Clock for outages and the rate limiter. @default Date.now */
  now?: () => number;
}

/** The provider's decision logic and state. */
export class ProviderEngine {
  private readonly opts: EngineOptions;
  private readonly now: () => number;
  private readonly models: Map<string, ModelConfig>;
  private profile: FaultProfile;
  private activatedAt: number;
  private limiter: RateLimiter | undefined;
  private attempts = new Map<string, number>();
  /** Cached prompt prefixes, by hash of (model, prefix). */
  private promptCache = new Set<string>();
  private down = new Set<string>();
  private counter = new StatsCounter();
  private seq = 0;
  /** File uploads seen since the profile became active: the `batch.fileUploadErrors` fault counts these. */
  uploadsSinceProfile = 0;
  /** Batch creations seen since the profile became active: the `batch.createErrors` and `createLostReplies` faults count these. */
  createsSinceProfile = 0;
  /** Hangs holding a socket; maintained by the server. */
  openHangs = 0;
  /** Chat requests received and not yet answered (or closed), and the most at once since the last reset. */
  inFlight = 0;
  maxInFlight = 0;

  /** A chat request arrived; the returned function ends it (idempotent). */
  openRequest(): () => void {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let open = true;
    return () => {
      if (open) this.inFlight--;
      open = false;
    };
  }

  constructor(opts: EngineOptions) {
    this.opts = opts;
    const base = opts.now ?? Date.now;
    // The offset lets a test or an out-of-process caller move time forward (POST /admin/clock).
    this.now = () => base() + this.clockOffsetMs;
    this.models = new Map(opts.models.map((m) => [m.id, m]));
    this.profile = opts.profile;
    this.activatedAt = this.now();
    this.limiter = this.makeLimiter();
  }

  private makeLimiter(): RateLimiter | undefined {
    const rl = this.profile.rateLimit;
    return rl ? rateLimiter({ rpm: rl.rpm, tpm: rl.tpm, burstSeconds: rl.burstSeconds, now: this.now }) : undefined;
  }

  /** Switches profile; outage windows and rate-limit buckets restart from now. */
  setProfile(profile: FaultProfile): void {
    this.profile = profile;
    this.uploadsSinceProfile = 0;
    this.createsSinceProfile = 0;
    this.activatedAt = this.now();
    this.limiter = this.makeLimiter();
  }

  setModelDown(model: string, down: boolean): void {
    if (down) this.down.add(model);
    else this.down.delete(model);
  }

  /** Clears counters, attempt memory and rate-limit buckets; keeps profile and models down. */
  reset(): void {
    this.promptCache.clear();
    this.attempts.clear();
    this.counter = new StatsCounter();
    this.limiter = this.makeLimiter();
    this.maxInFlight = this.inFlight;
  }

  stats(): ProviderStats {
    return this.counter.snapshot({
      profile: this.profile.name,
      seed: this.opts.seed,
      seen: this.attempts.size,
      modelsDown: [...this.down],
      openHangs: this.openHangs,
      inFlight: this.inFlight,
      maxInFlight: this.maxInFlight,
    });
  }

  /** Prompt-cache accounting of one answered request: a prefix seen before is read, a new one written. */
  private cacheUsage(model: string, req: ChatRequest): { cachedInput?: number; cacheWrite?: number } {
    if (req.cachePrefix === undefined) return {};
    const tokens = countPromptTokens([req.cachePrefix]);
    if (tokens < (this.opts.cacheMinTokens ?? 1024)) return {};
    const key = hashHex('cache', model, req.cachePrefix);
    if (this.promptCache.has(key)) return { cachedInput: tokens };
    if (this.promptCache.size > 10_000) this.promptCache.clear();
    this.promptCache.add(key);
    return { cacheWrite: tokens };
  }

  /** Counts a written HTTP status. */
  recordStatus(status: number): void {
    StatsCounter.bump(this.counter.byStatus, String(status));
  }

  listModels(): ModelConfig[] {
    return [...this.models.values()];
  }

  nextRequestId(): string {
    return `req_${(++this.seq).toString(16).padStart(12, '0')}`;
  }

  /** The live counters, for the batch endpoints' own figures. */
  counters(): StatsCounter {
    return this.counter;
  }

  /** The active fault profile. */
  currentProfile(): FaultProfile {
    return this.profile;
  }

  /** Seed of every fault decision. */
  get seed(): number {
    return this.opts.seed;
  }

  /** The injected clock, plus what {@link advanceClock} added. */
  clock(): number {
    return this.now();
  }

  /** Milliseconds added to the clock by {@link advanceClock}. */
  private clockOffsetMs = 0;

  /** Moves the provider's clock forward (batches, outages, rate-limit buckets); returns the new time. */
  advanceClock(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`advanceMs must be a non-negative number of milliseconds, got ${String(ms)}`);
    this.clockOffsetMs += ms;
    return this.now();
  }

  /** Checks the API key a batch endpoint received; undefined when it passes. */
  rejectKey(d: Dialect, headers: IncomingHttpHeaders): Reply | undefined {
    if (this.opts.apiKey === undefined || d.apiKeyOf(headers) === this.opts.apiKey) return undefined;
    return d.error('auth', { requestId: this.nextRequestId() });
  }

  /**
   * Decides the outcome of one chat request given its raw body text. With `batch`,
   * the request is one line of a provider batch: the key was checked by the batch
   * endpoint, the synchronous rate limiter does not apply, and usage is priced at
   * {@link BATCH_DISCOUNT} of the synchronous price.
   */
  handleChat(d: Dialect, rawBody: string, headers: IncomingHttpHeaders, batch = false): Outcome {
    const c = this.counter;
    c.requests++;
    StatsCounter.bump(c.byApi, d.api);
    const requestId = this.nextRequestId();
    const base = { [d.requestIdHeader]: requestId };
    const fail = (kind: ErrorKind, extra: Omit<Parameters<Dialect['error']>[1], 'requestId'> = {}, delayMs = 0): Outcome => {
      const r = d.error(kind, { requestId, ...extra });
      return { type: 'reply', reply: { ...r, headers: { ...base, ...r.headers } }, delayMs };
    };

    if (!batch && this.opts.apiKey !== undefined && d.apiKeyOf(headers) !== this.opts.apiKey) return fail('auth');
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      return fail('bad_request', { message: 'We could not parse the JSON body of your request.' });
    }
    const req = d.parse(body);
    if ('error' in req) return fail('bad_request', { message: req.error, ...(req.param ? { param: req.param } : {}) });
    const model = this.models.get(req.model);
    if (!model) return fail('model_not_found', { model: req.model });
    StatsCounter.bump(c.byModel, model.id);

    const identity = hashHex(req.identitySource).slice(0, 32);
    const attempt = this.attempts.get(identity) ?? 0;
    this.attempts.set(identity, attempt + 1);
    const promptTokens = countPromptTokens(req.texts);
    const maxTokens = req.maxTokens ?? 0;
    const latency = (model.latencyMs.fixed + model.latencyMs.jitter * unitHash('latency', this.opts.seed, identity, attempt)) * this.opts.latencyScale;
    const faultCtx = { model: model.id, promptTokens, maxTokens, contextWindow: model.contextWindow };

    // Debug headers: which fault was injected, and which attempt of this identity this was.
    const tag = (o: Outcome, fault: string | undefined): Outcome => {
      if (o.type === 'reset') return o;
      if (fault) o.reply.headers['x-steadfast-fault'] = fault;
      o.reply.headers['x-steadfast-attempt'] = String(attempt);
      return o;
    };
    const headerSpec = headers[FAULT_HEADER];
    const directive = FAULT_DIRECTIVE_RE.exec(req.lastUserText)?.[1];
    const spec = typeof headerSpec === 'string' ? headerSpec : directive;
    const forced = spec === undefined ? undefined : forcedFault(spec, attempt);
    if (typeof forced === 'object') return fail('bad_request', { message: `${FAULT_HEADER}: ${forced.error}` });

    // The context check is not a fault: it always applies, whatever the profile.
    if (forced === 'context_length' || promptTokens + maxTokens > model.contextWindow) {
      StatsCounter.bump(c.byFault, 'context_length');
      // A forced overflow reports a prompt one token over the window, so the message stays coherent.
      const shown = promptTokens + maxTokens > model.contextWindow ? promptTokens : model.contextWindow + 1;
      return tag(fail('context_length', { ...faultCtx, promptTokens: shown }), forced === 'context_length' ? 'context_length' : undefined);
    }

    let kind: FaultKind | undefined = forced === 'none' ? undefined : forced;
    let retryAfterMs = this.profile.retryAfterMs ?? 1000;
    let rate: RateInfo | undefined;
    if (forced === undefined) {
      const outage = this.down.has(model.id) ? { kind: 'overloaded' as const } : activeOutage(this.profile, model.id, this.now(), this.activatedAt);
      const rl = this.profile.rateLimit;
      const cap = this.profile.capacity;
      if (outage) kind = outage.kind ?? 'overloaded';
      else if (cap && this.inFlight > cap.maxConcurrent) {
        // Past its capacity the provider sheds the request at once.
        StatsCounter.bump(c.byFault, 'capacity');
        if (cap.kind === 'overloaded') return tag(fail('overloaded', faultCtx), undefined);
        const retryAfterMs = cap.retryAfterMs ?? 200;
        const rate: RateInfo = { limitRequests: cap.maxConcurrent, remainingRequests: 0, resetRequestsMs: retryAfterMs, limitTokens: 0, remainingTokens: 0, resetTokensMs: 0 };
        return tag(fail('rate_limit', { ...faultCtx, retryAfterMs, limitedBy: 'requests', requested: promptTokens + maxTokens, rate }), undefined);
      } else if (!batch && this.limiter && rl && (!rl.models || rl.models.includes(model.id))) {
        const adm = this.limiter.admit(model.id, promptTokens + maxTokens);
        rate = adm.info;
        if (!adm.ok) {
          StatsCounter.bump(c.byFault, 'rate_limit');
          return tag(fail('rate_limit', { ...faultCtx, retryAfterMs: adm.retryAfterMs, limitedBy: adm.limitedBy, requested: adm.requested, rate: adm.info }), undefined);
        }
      }
      if (!kind) {
        const f = decideFault(this.profile, { seed: this.opts.seed, identity, attempt, model: model.id });
        kind = f?.kind;
        if (f?.retryAfterMs !== undefined) retryAfterMs = f.retryAfterMs;
      }
    }
    if (kind) StatsCounter.bump(c.byFault, kind);
    const tagged = (o: Outcome): Outcome => tag(o, kind);

    switch (kind) {
      case 'reset':
        return { type: 'reset' };
      case 'rate_limit': {
        const rl = this.profile.rateLimit;
        const synthetic: RateInfo = {
          limitRequests: rl?.rpm ?? 600,
          remainingRequests: 0,
          resetRequestsMs: retryAfterMs,
          limitTokens: rl?.tpm ?? 200_000,
          remainingTokens: Math.max(0, (rl?.tpm ?? 200_000) - promptTokens - maxTokens),
          resetTokensMs: retryAfterMs,
        };
        return tagged(fail('rate_limit', { ...faultCtx, retryAfterMs, limitedBy: 'requests', rate: synthetic }));
      }
      case 'auth':
      case 'insufficient_quota':
        return tagged(fail(kind, faultCtx));
      case 'context_length':
        return tagged(fail(kind, { ...faultCtx, promptTokens: model.contextWindow + 1 }));
      case 'server_error':
      case 'unavailable':
      case 'overloaded':
        return tagged(fail(kind, faultCtx, latency));
      default:
        break;
    }

    const answer = buildAnswer(req, kind);
    const output = answer.stop === 'length' && req.maxTokens !== undefined ? Math.min(req.maxTokens, countTokensApprox(answer.text)) : countTokensApprox(answer.text);
    const usage = { input: promptTokens, output, ...this.cacheUsage(model.id, req) };
    const id = hashHex('response', this.opts.seed, identity, attempt);
    const reply: Reply = { status: 200, headers: { ...base, ...(rate ? d.rateHeaders(rate) : {}) }, body: d.success(req, answer, usage, id) };
    const cost = costOf(model, usage.input, usage.output) * (batch ? BATCH_DISCOUNT : 1);
    const onSent = (): void => this.counter.success(identity, usage.input, usage.output, cost, batch);
    if (kind === 'hang') return tagged({ type: 'hang', ms: this.profile.hangMs ?? 120_000, reply, onSent });
    return tagged({ type: 'reply', reply, delayMs: latency, onSent });
  }
}

/** The content for a request: the deterministic answer, altered by an output fault. */
export function buildAnswer(req: ChatRequest, fault: FaultKind | undefined): Answer {
  const last = req.lastUserText;
  const json = req.mode !== 'text';
  let value: unknown = req.mode === 'text' ? undefined : req.mode === 'json' ? { answer: plainAnswer(last) } : expectedAnswer(req.schema, last);
  let text = json ? JSON.stringify(value) : plainAnswer(last);
  let stop: Answer['stop'] = 'end';
  if (fault === 'bad_json') text = json ? notJson(text) : '';
  else if (fault === 'schema_violation') {
    value = req.schema ? violateSchema(req.schema, value) : 'not an object';
    text = json ? JSON.stringify(value) : '';
  } else if (fault === 'refusal') stop = 'refusal';
  else if (fault === 'truncated') {
    text = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
    stop = 'length';
  }
  // A real model stops at max_tokens: honour it, which also cuts JSON short.
  if (stop !== 'refusal' && req.maxTokens !== undefined && countTokensApprox(text) > req.maxTokens) {
    text = cutToTokens(text, req.maxTokens);
    stop = 'length';
  }
  return { text, asTool: req.mode === 'tool', stop };
}
