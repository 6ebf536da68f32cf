/**
 * The activities wired to a real fault-injecting provider and an in-memory store,
 * for tests that call them through MockActivityEnvironment. `fault` forces a fault
 * on the next calls (the `x-steadfast-fault` header); `lastHeaders` holds the
 * headers of the provider's last response.
 */
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

export async function createActivityRig(seed: number): Promise<ActivityRig> {
  const provider = await startProvider({ port: 0, profile: 'none', seed, latencyScale: 0 });
  const store = await openStore({ dbPath: ':memory:' });
  const rig: ActivityRig = {
    provider,
    store,
    acts: undefined as unknown as Activities,
    fault: undefined,
    lastHeaders: undefined,
    async close() {
      await store.close();
      await provider.close();
    },
  };
  // The SDKs' fetch, with the fault header added and the response headers captured.
  const faultFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    if (rig.fault) headers.set(FAULT_HEADER, rig.fault);
    const res = await fetch(input, { ...init, headers });
    rig.lastHeaders = res.headers;
    return res;
  };
  rig.acts = createActivities({ store, providerUrl: provider.url, env: {}, fetch: faultFetch });
  return rig;
}
