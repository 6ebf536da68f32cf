/**
 * Reaching the shared limiter: signal-with-start of the `rateLimiter` workflow of
 * a key (id from `limiterIdOf`), on this worker's task queue, so the first batch
 * on a key starts it and a limiter that ended after a quiet spell comes back.
 */
import { Context } from '@temporalio/activity';
import { limiterAcquireSignal } from '../src/shared/limiter.ts';
import type { AcquireMessage } from '../src/shared/limiter.ts';

/** The `ensureLimiter` input: the limiter's workflow id and the batch's message. */
export interface EnsureLimiterRequest {
  limiterId: string;
  acquire: AcquireMessage;
}

/** Delivers the batch's message, starting the limiter when it is not running. */
export async function ensureLimiter(req: EnsureLimiterRequest): Promise<void> {
  const ctx = Context.current();
  await ctx.client.workflow.signalWithStart('rateLimiter', {
    workflowId: req.limiterId,
    taskQueue: ctx.info.taskQueue,
    args: [{ id: req.limiterId }],
    signal: limiterAcquireSignal,
    signalArgs: [req.acquire],
    staticSummary: 'shared rate limiter of one provider key',
  });
}
