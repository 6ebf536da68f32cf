/**
 * Counters served by `GET /admin/stats`. Plain records (no Map/Set) so the object
 * serialises as-is.
 */

/** A snapshot of the provider's counters since start or the last reset. */
export interface ProviderStats {
  startedAt: string;
  profile: string;
  seed: number;
  /** Chat requests received (both APIs, including rejected ones). */
  requests: number;
  /** 200 answers delivered (including answers with injected bad output). */
  successes: number;
  byApi: Record<string, number>;
  byModel: Record<string, number>;
  /** HTTP status codes written; resets and unanswered hangs have none. */
  byStatus: Record<string, number>;
  /** Injected faults and context-window rejections, by kind. */
  byFault: Record<string, number>;
  tokens: { input: number; output: number };
  costUsd: number;
  /** Distinct request identities seen; those answered 200 once, and more than once. */
  identities: { seen: number; succeeded: number; succeededMoreThanOnce: number };
  modelsDown: string[];
  /** Hangs currently holding a socket. */
  openHangs: number;
  /** Chat requests open now (received, not yet answered), and the most open at once since the last reset. */
  inFlight: number;
  maxInFlight: number;
  /** Provider batches (OpenAI Batch API, Anthropic Message Batches). */
  batches: BatchStats;
}

/** Counters of the batch endpoints. */
export interface BatchStats {
  /** Batches created, in total and per API. */
  created: number;
  byApi: Record<string, number>;
  /** Requests inside created batches (each also counts in `requests` once it is answered). */
  requests: number;
  /** Outcomes of requests in ended batches: succeeded, errored, expired, canceled. */
  results: Record<string, number>;
  /** Cost of answered batch requests, at the batch discount (also part of `costUsd`). */
  costUsd: number;
  /** File uploads accepted, and uploads answered by an injected 5xx. */
  fileUploads: number;
  fileUploadErrors: number;
  /** Batch creations answered with an injected 5xx (`batch.createErrors`). */
  createErrors?: number;
  /** Batch creations accepted whose answer was dropped (`batch.createLostReplies`). */
  createLostReplies?: number;
}

/** Mutable counters behind {@link ProviderStats}. */
export class StatsCounter {
  startedAt = new Date().toISOString();
  requests = 0;
  successes = 0;
  byApi: Record<string, number> = {};
  byModel: Record<string, number> = {};
  byStatus: Record<string, number> = {};
  byFault: Record<string, number> = {};
  tokens = { input: 0, output: 0 };
  costUsd = 0;
  batches: BatchStats = { created: 0, byApi: {}, requests: 0, results: {}, costUsd: 0, fileUploads: 0, fileUploadErrors: 0, createErrors: 0, createLostReplies: 0 };
  /** Successes per identity, to show how many identities were answered more than once. */
  private successesById = new Map<string, number>();
  private multi = 0;

  /** Adds one to `record[key]`. */
  static bump(record: Record<string, number>, key: string): void {
    record[key] = (record[key] ?? 0) + 1;
  }

  success(identity: string, input: number, output: number, cost: number, batch = false): void {
    this.successes++;
    if (batch) this.batches.costUsd += cost;
    this.tokens.input += input;
    this.tokens.output += output;
    this.costUsd += cost;
    const n = (this.successesById.get(identity) ?? 0) + 1;
    this.successesById.set(identity, n);
    if (n === 2) this.multi++;
  }

  snapshot(extra: { profile: string; seed: number; seen: number; modelsDown: string[]; openHangs: number; inFlight: number; maxInFlight: number }): ProviderStats {
    return {
      startedAt: this.startedAt,
      profile: extra.profile,
      seed: extra.seed,
      requests: this.requests,
      successes: this.successes,
      byApi: { ...this.byApi },
      byModel: { ...this.byModel },
      byStatus: { ...this.byStatus },
      byFault: { ...this.byFault },
      tokens: { ...this.tokens },
      costUsd: Math.round(this.costUsd * 1e6) / 1e6,
      identities: { seen: extra.seen, succeeded: this.successesById.size, succeededMoreThanOnce: this.multi },
      modelsDown: extra.modelsDown,
      openHangs: extra.openHangs,
      inFlight: extra.inFlight,
      maxInFlight: extra.maxInFlight,
      batches: { ...this.batches, byApi: { ...this.batches.byApi }, results: { ...this.batches.results }, costUsd: Math.round(this.batches.costUsd * 1e6) / 1e6 },
    };
  }
}
