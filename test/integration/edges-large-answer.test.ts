/**
 * An answer too large for a payload: the attempt fails at once as a non-retryable
 * `PayloadsTooLarge` (with the billed usage), so it is neither retried nor paid
 * again, and the item moves on to the next tier. The oversized answers come from a
 * small OpenAI-compatible server (the fault provider's answers are short).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities, openStore } from '../../activities/index.ts';
import type { ResultStore } from '../../activities/index.ts';
import { FailureType } from '../../src/shared/failures.ts';
import { PipelineSpec, ProviderSpec } from '../../src/shared/spec.ts';
import type { PipelineSpecInput } from '../../src/shared/spec.ts';
import type { LlmRequest, LlmResult } from '../../src/shared/types.ts';
import { createHarness } from '../support/harness.ts';

/** Answers every chat completion with `size` bytes of text; counts the requests. */
function bigAnswerServer(size: () => number) {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests += 1;
      const body = JSON.stringify({
        id: `chatcmpl-${requests}`,
        object: 'chat.completion',
        created: 1_750_000_000,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(size()), refusal: null }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 20, completion_tokens: 700_000, total_tokens: 700_020 },
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
  });
  return {
    server,
    requests: () => requests,
    async start(): Promise<string> {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const MB3 = 3 * 1024 * 1024;
let answerSize = MB3;
const big = bigAnswerServer(() => answerSize);
let bigUrl = '';
let store: ResultStore;
beforeAll(async () => {
  bigUrl = await big.start();
  store = await openStore({ dbPath: ':memory:' });
});
afterAll(async () => {
  await store?.close();
  await big.close();
});

function request(over: Partial<LlmRequest> = {}): LlmRequest {
  return {
    batchId: 'b',
    itemId: 'i',
    tier: 0,
    provider: ProviderSpec.parse({ kind: 'openai', model: 'gpt-4o-mini', baseURL: bigUrl, timeout: '20s', pricing: { inputPerMTok: 0.15, outputPerMTok: 0.6 } }),
    messages: [{ role: 'user', content: 'Write a very long essay' }],
    output: PipelineSpec.shape.output.parse({ format: 'text' }),
    ...over,
  };
}

const activityEnv = () => new MockActivityEnvironment({ attempt: 1, startToCloseTimeoutMs: 60_000, heartbeatTimeoutMs: 30_000 }, { logger: new DefaultLogger('ERROR') });

describe('an LLM answer too large for a payload', () => {
  it('fails the attempt as a non-retryable PayloadsTooLarge that keeps the usage, over the configured limit', async () => {
    const acts = createActivities({ store, env: {} });
    answerSize = MB3;
    const err = await activityEnv()
      .run(acts.callLlm, request())
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect(f.type).toBe(FailureType.PayloadsTooLarge);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(`${MB3} bytes, over the 262144-byte limit`);
    const details = f.details?.[0] as { usage: { outputTokens: number }; text?: string; bytes: number };
    expect(details.usage.outputTokens).toBe(700_000);
    expect(details.text).toBeUndefined();
    expect(details.bytes).toBe(MB3);

    // The limit is configurable, and an answer under it passes.
    const small = createActivities({ store, env: {}, maxAnswerBytes: 64 * 1024 });
    answerSize = 100 * 1024;
    const e2 = await activityEnv()
      .run(small.callLlm, request())
      .catch((e: unknown) => e as ApplicationFailure);
    expect((e2 as ApplicationFailure).type).toBe(FailureType.PayloadsTooLarge);
    answerSize = 32 * 1024;
    const ok: LlmResult = await activityEnv().run(small.callLlm, request());
    expect(ok.text).toHaveLength(32 * 1024);
  });

  it('is tried once, then the next tier answers; the row records the fallback', async () => {
    const h = await createHarness();
    try {
      answerSize = MB3;
      const before = big.requests();
      const pipeline: PipelineSpecInput = {
        name: 'big-answer',
        prompt: { template: 'Ticket {{id}}: {{text}}' },
        output: { format: 'text' },
        providers: [
          { name: 'verbose', kind: 'openai', model: 'gpt-4o-mini', baseURL: bigUrl, timeout: '20s' },
          { name: 'fallback', kind: 'openai', model: 'gpt-4o-mini', timeout: '5s' },
        ],
        retry: { maxAttempts: 4, initialInterval: '100ms', maxInterval: '200ms' },
      };
      const summary = await h.run(async () => {
        const handle = await h.startBatch({ pipeline, items: [{ id: 'big-1', text: 'tell me everything' }] });
        return handle.result();
      });
      expect(summary).toMatchObject({ total: 1, succeeded: 1, status: 'completed' });
      // One attempt on the verbose tier, not four: the failure was not taken for a transient one.
      expect(big.requests() - before).toBe(1);
      const [row] = await h.store.list(summary.batchId);
      expect(row).toMatchObject({ status: 'succeeded', provider: 'fallback', tier: 1 });
      // The billed, rejected answer counts: 700,000 output tokens of the first tier.
      expect(row!.outputTokens).toBeGreaterThanOrEqual(700_000);
    } finally {
      await h.close();
    }
  }, 90_000);
});
