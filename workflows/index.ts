/** The workflows the worker registers (its `workflowsPath` points here). */
export { batchPipeline } from './batch.ts';
export { itemPipeline } from './item.ts';
export { providerBatch } from './provider-batch.ts';
export { rateLimiter } from './limiter.ts';
