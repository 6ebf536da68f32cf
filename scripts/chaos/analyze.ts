/**
 * What a chaos run left behind, judged: items lost, rows duplicated or written
 * twice, LLM calls beyond one per item (and which kill or restart caused each),
 * and how long the batch took to complete another item after each kill.
 */
import { DatabaseSync } from 'node:sqlite';
import type { CallRecord } from './proxy.ts';

/** One SIGKILL of a worker. */
export interface Kill {
  at: number;
  slot: string;
  pid: number;
  /** LLM calls of that worker open at the provider when it was killed. */
  inFlight: number;
  inFlightItems: string[];
}

/** The dev server's restart: down from `at` until `upAt`. */
export interface ServerRestart {
  at: number;
  upAt: number;
  signal: string;
}

export interface KillReport extends Kill {
  /**
   * Calls answered shortly (<= ANSWERED_WINDOW_MS) before the kill and repeated after it: the
   * worker had the answer but died before reporting the activity, so the call was still in flight
   * as far as Temporal knew.
   */
  answeredUnreported: number;
  /** Calls in flight at the kill: open at the provider, plus answered but unreported. */
  inFlightTotal: number;
  /** Calls repeated because of this kill. */
  extra: number;
  /** `extra <= inFlightTotal`: the goal for this kill. */
  withinGoal: boolean;
  /** Time from the kill to the next item row written (any worker). */
  nextCompletedMs: number | null;
  /** Time from the kill until every item it interrupted had its row. */
  interruptedRecoveredMs: number | null;
}

/** An answer older than this at a kill should have been reported already: its repeat is not blamed on the kill. */
export const ANSWERED_WINDOW_MS = 2_000;

/**
 * A request the killed process wrote just before SIGKILL can reach the proxy a few ms after the
 * kill was recorded (it is then cut off when the socket closes): such a call was in flight too.
 * The slot's next worker needs seconds to start, so nothing else can come from it this soon.
 */
export const KILL_GRACE_MS = 1_000;

/** True when `c` was open at the provider when its worker was killed at `k`. */
export function openAtKill(c: CallRecord, k: Kill): boolean {
  if (c.slot !== k.slot || c.startedAt > k.at + KILL_GRACE_MS) return false;
  if (c.startedAt > k.at) return c.aborted || c.endedAt === null;
  return c.endedAt === null || c.endedAt > k.at;
}

/** The item of a call key: `<id>` or, for a step of a multi-step item, `<id>#<step>`. */
export function itemOfCall(key: string): string {
  const i = key.indexOf('#');
  return i < 0 ? key : key.slice(0, i);
}

/** The step of a call key (`<id>#<step>`), or null for a one-prompt item. */
export function stepOfCall(key: string): string | null {
  const i = key.indexOf('#');
  return i < 0 ? null : key.slice(i + 1);
}

/**
 * Per step of a multi-step batch: calls, calls beyond one per (item, step), those blamed on
 * kills, and the calls of that step in flight at the kills, open at the provider or answered
 * but not yet reported (the goal: blamed <= in flight).
 */
export function perStep(v: ChaosVerdict, calls: readonly CallRecord[]): Record<string, { calls: number; extra: number; extraAtKills: number; inFlightAtKills: number }> {
  const out: Record<string, { calls: number; extra: number; extraAtKills: number; inFlightAtKills: number }> = {};
  const at = (step: string) => (out[step] ??= { calls: 0, extra: 0, extraAtKills: 0, inFlightAtKills: 0 });
  for (const c of calls) {
    const step = c.itemId === null ? null : stepOfCall(c.itemId);
    if (step !== null) at(step).calls++;
  }
  for (const d of v.extraDetails) {
    const step = stepOfCall(d.itemId);
    if (step === null) continue;
    at(step).extra++;
    if (d.cause === 'inFlightAtKill' || d.cause === 'answeredBeforeKill') at(step).extraAtKills++;
    // An answer the killed worker had not reported yet was in flight as far as Temporal knew.
    if (d.cause === 'answeredBeforeKill') at(step).inFlightAtKills++;
  }
  for (const k of v.kills) {
    for (const id of k.inFlightItems) {
      const step = stepOfCall(id);
      if (step !== null) at(step).inFlightAtKills++;
    }
  }
  return out;
}

export interface ChaosVerdict {
  items: number;
  rows: number;
  byStatus: Record<string, number>;
  lost: string[];
  duplicateRows: number;
  /** Rows updated after their first write (write_count > 1). */
  rewrittenRows: number;
  calls: number;
  /** Calls beyond one per item. */
  extraCalls: number;
  /** 200 answers beyond one per item. */
  extraSuccesses: number;
  extraBy: { inFlightAtKill: number; answeredBeforeKill: number; serverRestart: number; other: number };
  otherExtra: { itemId: string; prev: CallRecord; next: CallRecord }[];
  /** Every extra call: why, and how long before the blamed kill the previous call ended (ms, negative = still open). */
  extraDetails: {
    itemId: string;
    cause: 'inFlightAtKill' | 'answeredBeforeKill' | 'serverRestart' | 'other';
    killAt: number | null;
    answeredBeforeKillMs: number | null;
    prev: CallRecord;
    nextStartedAt: number;
  }[];
  kills: KillReport[];
}

interface Row {
  item_id: string;
  status: string;
  created_at: string;
  write_count: number;
}

const FINAL = new Set(['succeeded', 'failed', 'skipped', 'approved']);

export function analyze(o: { dbPath: string; batchId: string; itemIds: string[]; calls: CallRecord[]; kills: Kill[]; restart: ServerRestart | null }): ChaosVerdict {
  const db = new DatabaseSync(o.dbPath, { readOnly: true });
  let rows: Row[];
  let duplicateRows: number;
  try {
    rows = db.prepare('SELECT item_id, status, created_at, write_count FROM results WHERE batch_id = ?').all(o.batchId) as unknown as Row[];
    const dup = db.prepare('SELECT COUNT(*) AS n FROM (SELECT item_id FROM results WHERE batch_id = ? GROUP BY item_id HAVING COUNT(*) > 1)').get(o.batchId);
    duplicateRows = Number(dup?.['n'] ?? 0);
  } finally {
    db.close();
  }
  const byItem = new Map(rows.map((r) => [r.item_id, r]));
  const byStatus: Record<string, number> = {};
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const lost = o.itemIds.filter((id) => !FINAL.has(byItem.get(id)?.status ?? ''));
  const created = rows.map((r) => Date.parse(r.created_at)).sort((a, b) => a - b);

  // Calls per item, in order; every call after the first is an extra one, blamed on what ended the previous.
  const perItem = new Map<string, CallRecord[]>();
  for (const c of o.calls) if (c.itemId) perItem.set(c.itemId, [...(perItem.get(c.itemId) ?? []), c]);
  const extraBy = { inFlightAtKill: 0, answeredBeforeKill: 0, serverRestart: 0, other: 0 };
  const perKill = new Map<Kill, { inFlight: number; answered: number }>(o.kills.map((k) => [k, { inFlight: 0, answered: 0 }]));
  const otherExtra: ChaosVerdict['otherExtra'] = [];
  const extraDetails: ChaosVerdict['extraDetails'] = [];
  let extraSuccesses = 0;
  for (const [itemId, calls] of perItem) {
    calls.sort((a, b) => a.startedAt - b.startedAt);
    const ok = calls.filter((c) => c.status === 200 && !c.aborted).length;
    extraSuccesses += Math.max(0, ok - 1);
    for (let i = 1; i < calls.length; i++) {
      const prev = calls[i - 1]!;
      const next = calls[i]!;
      const open = o.kills.find((k) => openAtKill(prev, k) && k.at <= next.startedAt);
      if (open) {
        extraBy.inFlightAtKill++;
        perKill.get(open)!.inFlight++;
        extraDetails.push({ itemId, cause: 'inFlightAtKill', killAt: open.at, answeredBeforeKillMs: null, prev, nextStartedAt: next.startedAt });
        continue;
      }
      const answered = o.kills.find(
        (k) => k.slot === prev.slot && prev.endedAt !== null && prev.endedAt <= k.at && k.at - prev.endedAt <= ANSWERED_WINDOW_MS && k.at <= next.startedAt,
      );
      const r = o.restart;
      if (answered) {
        extraBy.answeredBeforeKill++;
        perKill.get(answered)!.answered++;
        extraDetails.push({ itemId, cause: 'answeredBeforeKill', killAt: answered.at, answeredBeforeKillMs: answered.at - prev.endedAt!, prev, nextStartedAt: next.startedAt });
      } else if (r && prev.startedAt <= r.upAt && (prev.endedAt ?? Infinity) >= r.at - ANSWERED_WINDOW_MS && next.startedAt >= r.at) {
        extraBy.serverRestart++;
        extraDetails.push({ itemId, cause: 'serverRestart', killAt: null, answeredBeforeKillMs: null, prev, nextStartedAt: next.startedAt });
      } else {
        extraBy.other++;
        extraDetails.push({ itemId, cause: 'other', killAt: null, answeredBeforeKillMs: null, prev, nextStartedAt: next.startedAt });
        if (otherExtra.length < 20) otherExtra.push({ itemId, prev, next });
      }
    }
  }

  const kills: KillReport[] = o.kills.map((recorded) => {
    const c = perKill.get(recorded)!;
    // Counted afterwards from the proxy's records, so a request still on its way at the kill counts too.
    const open = o.calls.filter((call) => openAtKill(call, recorded));
    const k: Kill = { ...recorded, inFlight: open.length, inFlightItems: open.flatMap((call) => (call.itemId ? [call.itemId] : [])) };
    const nextRow = created.find((t) => t > k.at);
    const recovered = k.inFlightItems.map((id) => byItem.get(itemOfCall(id))).map((r) => (r ? Date.parse(r.created_at) - k.at : null));
    return {
      ...k,
      answeredUnreported: c.answered,
      inFlightTotal: k.inFlight + c.answered,
      extra: c.inFlight + c.answered,
      // Answered-unreported calls count on both sides; open calls repeated can be at most the open calls.
      withinGoal: c.inFlight <= k.inFlight,
      nextCompletedMs: nextRow === undefined ? null : nextRow - k.at,
      interruptedRecoveredMs: recovered.length === 0 || recovered.some((x) => x === null) ? null : Math.max(...(recovered as number[])),
    };
  });

  return {
    items: o.itemIds.length,
    rows: rows.length,
    byStatus,
    lost,
    duplicateRows,
    rewrittenRows: rows.filter((r) => Number(r.write_count) > 1).length,
    calls: o.calls.filter((c) => c.itemId !== null).length,
    extraCalls: [...perItem.values()].reduce((a, cs) => a + cs.length - 1, 0),
    extraSuccesses,
    extraBy,
    otherExtra,
    extraDetails,
    kills,
  };
}
