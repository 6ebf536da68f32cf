/**
 * The batch's circuit breakers, one per provider tier: fed by the items' tier
 * results and outcomes, ticked by the batch's clock, and broadcast to running
 * items when a tier opens or closes so they skip (or leave) it.
 */
import { getExternalWorkflowHandle } from '@temporalio/workflow';
import { circuitSignal } from '../src/shared/messages.ts';
import { tierName } from '../src/shared/tiers.ts';
import type { ItemOutcome } from '../src/shared/types.ts';
import type { Alerts } from './batch-alerts.ts';
import type { BatchState } from './batch-state.ts';
import { allows, onFailure, onSuccess, tick, withProbe } from './circuit.ts';
import type { CircuitState } from './circuit.ts';

export class Circuits {
  private readonly state: BatchState;
  private readonly alerts: Alerts;

  constructor(state: BatchState, alerts: Alerts) {
    this.state = state;
    this.alerts = alerts;
  }

  /** Items running inside the batch workflow (its fast path): told directly, they have no workflow to signal. */
  local: { has(itemId: string): boolean; setOpenTiers(itemId: string, openTiers: number[]): void } | undefined;

  private get circuits(): readonly CircuitState[] {
    return this.state.view.circuits;
  }

  /** A finished item: a success closes its tier; a probe that never used its half-open tier frees the probe slot. */
  onItemDone(o: ItemOutcome): void {
    if (o.status === 'succeeded' && o.tier !== null) this.set(o.tier, onSuccess(this.circuits[o.tier]!));
    this.circuits.forEach((c, t) => c.probe === o.itemId && c.state === 'half_open' && this.set(t, { ...c, probe: null }));
  }

  /** One call's result on a tier. False when the tier does not exist. */
  onTierResult(r: { tier: number; ok: boolean; errorType?: string }, now: number): boolean {
    const c = this.circuits[r.tier];
    if (!c) return false;
    const { failureThreshold, cooldown } = this.state.view.pipeline.circuitBreaker;
    this.set(r.tier, r.ok ? onSuccess(c) : onFailure(c, now, { failureThreshold, cooldownMs: cooldown }));
    const after = this.circuits[r.tier]!;
    if (after.opened > c.opened) {
      const { batchId, pipeline } = this.state.view;
      const name = tierName(pipeline.providers[r.tier]!, r.tier);
      const why = c.state === 'half_open' ? 'its half-open probe failed' : `${after.failures} consecutive failures`;
      this.alerts.send('circuit_open', `Circuit of ${name} opened in batch ${batchId} after ${why} (last: ${r.errorType ?? 'unknown'}); cool-down ${cooldown / 1000} s.`);
    }
    return true;
  }

  /** Open circuits half-open when their cool-down has passed. */
  tick(now: number): void {
    this.circuits.forEach((c, t) => this.set(t, tick(c, now)));
  }

  /** Epoch ms when the first open circuit half-opens; null while none is open. */
  get nextHalfOpen(): number | null {
    const until = this.circuits.map((c) => c.openUntil).filter((u): u is number => u !== null);
    return until.length ? Math.min(...until) : null;
  }

  /** Milliseconds until the next open circuit half-opens. */
  nextChange(now: number): number | undefined {
    const next = this.nextHalfOpen;
    return next === null ? undefined : Math.max(next - now, 1);
  }

  /** New items wait while every tier is closed to them. */
  get anyOpenToNewItems(): boolean {
    return this.circuits.some((c) => c.state === 'closed' || (c.state === 'half_open' && c.probe === null));
  }

  /** Tiers closed to a new item; it becomes the probe of a half-open tier that has none. */
  openTiersForNewItem(itemId: string): number[] {
    this.circuits.forEach((c, t) => this.state.setCircuit(t, withProbe(c, itemId)));
    return this.openTiersFor(itemId);
  }

  private openTiersFor(itemId: string): number[] {
    return this.circuits.flatMap((c, t) => (allows(c, itemId) ? [] : [t]));
  }

  private set(t: number, next: CircuitState): void {
    const prev = this.state.setCircuit(t, next);
    if (prev.state !== next.state) this.broadcast();
  }

  /** Tells running items which tiers are closed to them, so they skip (or leave) those tiers. */
  private broadcast(): void {
    const { batchId, running } = this.state.view;
    for (const id of running) {
      if (this.state.isPending(id)) continue;
      if (this.local?.has(id)) {
        this.local.setOpenTiers(id, this.openTiersFor(id));
        continue;
      }
      this.alerts.track(getExternalWorkflowHandle(`${batchId}/${id}`).signal(circuitSignal, { openTiers: this.openTiersFor(id) }));
    }
  }
}
