/**
 * `rateLimiter`: one long-running workflow per provider key (id from
 * `limiterIdOf`), started by the first batch that needs it (signal-with-start)
 * and shared by every batch and worker that calls the same key. It deals permits
 * as send times in rounds (workflows/limiter-state.ts) and signals them to the batches; it is
 * durable like any workflow, so a worker crash or restart loses no grant and no
 * batch's place. It continues as new before its history grows, and ends after a
 * quiet spell with no batch registered (the next batch starts it again).
 */
import { allHandlersFinished, condition, continueAsNew, getExternalWorkflowHandle, log, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { limiterAcquireSignal, limiterDescribed, limiterReleaseSignal, limiterStateQuery, permitsSignal } from '../src/shared/limiter.ts';
import { errorMessage } from '../src/shared/failures.ts';
import { acquire, grant, newLimiter, nextRoundIn, release, view, wanting } from './limiter-state.ts';
import type { LimiterState } from './limiter-state.ts';

/** Continue as new past this many events: a short history replays fast after a worker restart. */
const HISTORY_EVENTS = 2_000;
/** With no batch registered for this long, the limiter ends. */
export const LIMITER_IDLE_MS = 5 * 60_000;

export async function rateLimiter(input: { id: string } | { carry: LimiterState }): Promise<void> {
  let s: LimiterState = 'carry' in input ? { ...input.carry, runs: input.carry.runs + 1 } : newLimiter(input.id, Date.now());
  const sends: Promise<void>[] = [];
  setHandler(limiterAcquireSignal, (m) => void (s = acquire(s, m, Date.now())), limiterDescribed(limiterAcquireSignal));
  setHandler(limiterReleaseSignal, (m) => void (s = release(s, m.client, m.returned, Date.now())), limiterDescribed(limiterReleaseSignal));
  setHandler(limiterStateQuery, () => view(s, Date.now()), limiterDescribed(limiterStateQuery));

  const send = (client: string, slots: number[]): void => {
    const p = getExternalWorkflowHandle(client)
      .signal(permitsSignal, { limiterId: s.id, slots, want: s.clients[client]?.want ?? 0 })
      .catch((err: unknown) => {
        // The batch is gone (finished, terminated): it is forgotten.
        log.info('batch unreachable; forgotten', { client, permits: slots.length, error: errorMessage(err) });
        s = release(s, client, slots.length, Date.now());
      });
    sends.push(p);
  };

  for (;;) {
    const round = grant(s, Date.now());
    s = round.state;
    for (const [client, slots] of Object.entries(round.grants)) send(client, slots);
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > HISTORY_EVENTS) {
      await Promise.all(sends.splice(0));
      await condition(allHandlersFinished);
      await continueAsNew<typeof rateLimiter>({ carry: s });
    }
    if (sends.length > 64) await Promise.all(sends.splice(0));
    const wait = nextRoundIn(s, Date.now());
    if (wait !== null) {
      await sleep(wait);
      continue;
    }
    const woke = await condition(() => wanting(s), LIMITER_IDLE_MS);
    if (!woke && Object.keys(s.clients).length === 0) {
      await Promise.all(sends.splice(0));
      await condition(allHandlersFinished);
      return;
    }
  }
}
