/**
 * The activities wired to a real fault-injecting provider and an in-memory store,
 * for tests that call them through MockActivityEnvironment. `fault` forces a fault
 * on the next calls (the `x-steadfast-fault` header); `lastHeaders` holds the
 * headers of the provider's last response.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { createActivities, openStore } from '../../activities/index.ts';
import type { Activities, ResultStore } from '../../activities/index.ts';
import { FAULT_HEADER, startProvider } from '../../src/provider/index.ts';
import type { RunningProvider } from '../../src/provider/index.ts';

export interface ActivityRig {
  provider: RunningProvider;
  store: ResultStore;
  acts: Activities;
  fault: string | undefined;
  lastHeaders: Headers | undefined;
  close(): Promise<void>;
}

/** Builds a rig; `into` is filled in place (so a holder handed out earlier sees it). */
export async function createActivityRig(seed: number, into = {} as ActivityRig): Promise<ActivityRig> {
  const provider = await startProvider({ port: 0, profile: 'none', seed, latencyScale: 0 });
  const store = await openStore({ dbPath: ':memory:' });
  const rig = into;
  // The SDKs' fetch, with the fault header added and the response headers captured.
  const faultFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    if (rig.fault) headers.set(FAULT_HEADER, rig.fault);
    const res = await fetch(input, { ...init, headers });
    rig.lastHeaders = res.headers;
    return res;
  };
  Object.assign(rig, {
    provider,
    store,
    acts: createActivities({ store, simulatedProviderUrl: provider.url, env: {}, fetch: faultFetch }),
    fault: undefined,
    lastHeaders: undefined,
    async close() {
      await store.close();
      await provider.close();
    },
  });
  return rig;
}

/** The tiers' pricing in these tests: the provider's own for gpt-4o-mini, so costs can be compared. */
export const TEST_PRICING = { inputPerMTok: 0.15, outputPerMTok: 0.6 };

/** A JSON Schema for `{ label, score }` answers, `label` one of `labels`. */
export function labelSchema(labels: string[]): Record<string, unknown> {
  return {
    type: 'object',
    properties: { label: { type: 'string', enum: labels }, score: { type: 'number', minimum: 0, maximum: 1 } },
    required: ['label', 'score'],
    additionalProperties: false,
  };
}

/**
 * Registers a rig for the enclosing test file: created before all tests, closed after,
 * its forced fault and captured headers cleared (and the provider's profile reset)
 * before each test. The returned object is filled in by then.
 */
export function useActivityRig(seed: number): ActivityRig {
  const rig = {} as ActivityRig;
  beforeAll(async () => void (await createActivityRig(seed, rig)));
  afterAll(async () => rig.close());
  beforeEach(() => {
    rig.fault = undefined;
    rig.lastHeaders = undefined;
    rig.provider.setProfile('none');
  });
  return rig;
}
