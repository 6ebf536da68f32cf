/**
 * Deliberately divergent versions of the workflows, for the replay test: they
 * issue other commands than the recorded histories, so replay must fail.
 */
import { sleep } from '@temporalio/workflow';

export async function batchPipeline(): Promise<string> {
  await sleep('1 minute');
  return 'diverged';
}

export async function itemPipeline(): Promise<string> {
  await sleep('1 minute');
  return 'diverged';
}

export async function providerBatch(): Promise<string> {
  await sleep('1 minute');
  return 'diverged';
}

export async function rateLimiter(): Promise<string> {
  await sleep('1 minute');
  return 'diverged';
}
