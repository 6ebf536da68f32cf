import Anthropic from '@anthropic-ai/sdk';
import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { expectedAnswer, startProvider } from '../../src/provider/index.ts';
import type { FaultProfile, JsonSchema, RunningProvider } from '../../src/provider/index.ts';

const schema: JsonSchema = {
  type: 'object',
  properties: { label: { type: 'string', enum: ['ok', 'broken'] }, summary: { type: 'string' } },
  required: ['label', 'summary'],
  additionalProperties: false,
};
const OAI_MODEL = 'gpt-4o-mini';
const ANT_MODEL = 'claude-3-5-haiku-latest';
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** A provider on a clock the test moves by hand, with real clients of both vendors. */
interface Rig {
  p: RunningProvider;
  oai: OpenAI;
  ant: Anthropic;
  advance(ms: number): void;
}

const open: RunningProvider[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
});

async function rig(profile: string | FaultProfile = 'none', seed = 0): Promise<Rig> {
  let t = T0;
  const p = await startProvider({ latencyScale: 0, profile, seed, now: () => t });
  open.push(p);
  return {
    p,
    oai: new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 5000 }),
    ant: new Anthropic({ baseURL: p.url, apiKey: 'test', maxRetries: 0, timeout: 5000 }),
    advance: (ms) => {
      t += ms;
    },
  };
}

function chatBody(text: string) {
  return {
    model: OAI_MODEL,
    messages: [
      { role: 'system', content: 'Classify.' },
      { role: 'user', content: text },
    ],
    response_format: { type: 'json_schema', json_schema: { name: 'out', schema, strict: true } },
  };
}

function jsonl(rows: Array<{ id: string; text: string }>, over: (row: Record<string, unknown>) => Record<string, unknown> = (r) => r): string {
  return rows.map((r) => JSON.stringify(over({ custom_id: r.id, method: 'POST', url: '/v1/chat/completions', body: chatBody(r.text) }))).join('\n') + '\n';
}

async function submit(r: Rig, text: string) {
  const file = await r.oai.files.create({ file: await toFile(Buffer.from(text), 'input.jsonl'), purpose: 'batch' });
  return r.oai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

interface OutLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}

async function lines(r: Rig, fileId: string | null | undefined): Promise<OutLine[]> {
  if (!fileId) return [];
  const text = await (await r.oai.files.content(fileId)).text();
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as OutLine);
}

function antRequest(id: string, text: string) {
  return {
    custom_id: id,
    params: {
      model: ANT_MODEL,
      max_tokens: 256,
      system: 'Extract.',
      messages: [{ role: 'user' as const, content: text }],
      tools: [{ name: 'emit', input_schema: schema as Anthropic.Tool.InputSchema }],
      tool_choice: { type: 'tool' as const, name: 'emit' },
    },
  };
}

async function results(r: Rig, id: string) {
  const out: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
  for await (const line of await r.ant.messages.batches.results(id)) out.push(line);
  return out;
}

async function caught(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error('expected the call to fail');
}

describe('OpenAI Batch API', () => {
  it('runs a batch: validating, in_progress until batchLatencyMs, then completed with the synchronous answers at half the cost', async () => {
    const r = await rig();
    const rows = [1, 2, 3].map((i) => ({ id: `item-${i}`, text: `Classify item ${i}: the box arrived crushed. ${'More detail. '.repeat(400)}` }));
    const created = await submit(r, jsonl(rows));
    expect(created).toMatchObject({ object: 'batch', status: 'validating', endpoint: '/v1/chat/completions', completion_window: '24h', output_file_id: null });
    expect(created.id).toMatch(/^batch_/);
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    r.advance(199);
    const running = await r.oai.batches.retrieve(created.id);
    expect(running.status).toBe('in_progress');
    expect(running.request_counts).toEqual({ total: 3, completed: 0, failed: 0 });
    expect(r.p.stats().successes).toBe(0);

    r.advance(1);
    const done = await r.oai.batches.retrieve(created.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(done.completed_at).toBe(Math.floor((T0 + 200) / 1000));
    expect(done.error_file_id).toBeNull();
    const out = await lines(r, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(['item-1', 'item-2', 'item-3']);
    for (const [i, l] of out.entries()) {
      expect(l.error).toBeNull();
      expect(l.response?.status_code).toBe(200);
      expect(l.id).toMatch(/^batch_req_/);
      const body = l.response?.body as { choices: Array<{ message: { content: string } }> };
      expect(JSON.parse(body.choices[0]?.message.content ?? '')).toEqual(expectedAnswer(schema, rows[i]?.text ?? ''));
    }
    const file = await r.oai.files.retrieve(done.output_file_id ?? '');
    expect(file).toMatchObject({ object: 'file', purpose: 'batch_output' });

    // The same requests synchronously, on a fresh provider: identical answers, twice the cost.
    const batchStats = r.p.stats();
    const sync = await rig();
    for (const row of rows) {
      const c = await sync.oai.chat.completions.create(chatBody(row.text) as OpenAI.ChatCompletionCreateParamsNonStreaming);
      const line = out.find((l) => l.custom_id === row.id)?.response?.body as { choices: Array<{ message: { content: string } }>; usage: unknown };
      expect(c.choices[0]?.message.content).toBe(line.choices[0]?.message.content);
      expect(c.usage).toEqual(line.usage);
    }
    expect(batchStats.batches).toMatchObject({ created: 1, byApi: { openai: 1 }, requests: 3, results: { succeeded: 3 }, fileUploads: 1 });
    expect(batchStats.costUsd).toBeGreaterThan(0);
    expect(batchStats.batches.costUsd).toBeCloseTo(batchStats.costUsd, 9);
    // Costs are reported rounded to 1e-6 USD.
    expect(batchStats.costUsd).toBeCloseTo(sync.p.stats().costUsd / 2, 5);
    expect(batchStats.costUsd).toBeLessThan(sync.p.stats().costUsd * 0.6);
  });

  it('puts per-request errors of a completed batch into the error file, with the engine faults', async () => {
    const r = await rig();
    const rows = [
      { id: 'ok', text: 'Classify item 1' },
      { id: 'server', text: 'Classify item 2 [[fault:server_error]]' },
      { id: 'overflow', text: 'Classify item 3 [[fault:context_length]]' },
      { id: 'badjson', text: 'Classify item 4 [[fault:bad_json]]' },
    ];
    const b = await submit(r, jsonl(rows));
    r.advance(200);
    const done = await r.oai.batches.retrieve(b.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 4, completed: 2, failed: 2 });
    const out = await lines(r, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(['ok', 'badjson']);
    const bad = out[1]?.response?.body as { choices: Array<{ message: { content: string } }> };
    expect(() => JSON.parse(bad.choices[0]?.message.content ?? '') as unknown).toThrow();
    const errs = await lines(r, done.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.response?.status_code])).toEqual([
      ['server', 500],
      ['overflow', 400],
    ]);
    expect(errs[1]?.response?.body).toMatchObject({ error: { code: 'context_length_exceeded', type: 'invalid_request_error' } });
    expect(errs.every((l) => l.error === null)).toBe(true);
    expect(r.p.stats().batches.results).toEqual({ succeeded: 2, errored: 2 });
  });

  it('expires a batch with part of its results: answered requests in the output, the rest batch_expired', async () => {
    const r = await rig({ name: 'expire', batch: { expireRate: 1, expireAnswered: 0.5, latencyMs: 1000 } }, 3);
    const rows = [1, 2, 3, 4, 5, 6].map((i) => ({ id: `r${i}`, text: `Classify item ${i}` }));
    const b = await submit(r, jsonl(rows));
    r.advance(999);
    expect((await r.oai.batches.retrieve(b.id)).status).toBe('in_progress');
    r.advance(1);
    const done = await r.oai.batches.retrieve(b.id);
    expect(done.status).toBe('expired');
    expect(done.expired_at).toBe(Math.floor((T0 + 1000) / 1000));
    expect(done.request_counts).toEqual({ total: 6, completed: 3, failed: 3 });
    const out = await lines(r, done.output_file_id);
    const errs = await lines(r, done.error_file_id);
    expect(out).toHaveLength(3);
    expect(errs).toHaveLength(3);
    expect(errs.every((l) => l.response === null && l.error?.code === 'batch_expired')).toBe(true);
    expect(new Set([...out, ...errs].map((l) => l.custom_id))).toEqual(new Set(rows.map((x) => x.id)));
    // Expired requests never ran: only the answered ones spent tokens.
    expect(r.p.stats().requests).toBe(3);
    expect(r.p.stats().batches.results).toEqual({ succeeded: 3, expired: 3 });
  });

  it('stays in_progress for the configured time (an hour of the injected clock, no sleeping)', async () => {
    const r = await rig('none:batchLatencyMs=3600000');
    const b = await submit(r, jsonl([{ id: 'a', text: 'Classify item 1' }]));
    for (let i = 0; i < 59; i++) {
      r.advance(60_000);
      expect((await r.oai.batches.retrieve(b.id)).status).toBe('in_progress');
    }
    r.advance(59_999);
    expect((await r.oai.batches.retrieve(b.id)).status).toBe('in_progress');
    r.advance(1);
    expect((await r.oai.batches.retrieve(b.id)).status).toBe('completed');
  });

  it('answers 500 to the first fileUploadErrors uploads (InternalServerError without retries), then accepts', async () => {
    const r = await rig('none:fileUploadErrors=2');
    const body = jsonl([{ id: 'a', text: 'Classify item 1' }]);
    for (let i = 0; i < 2; i++) {
      const err = await caught(r.oai.files.create({ file: await toFile(Buffer.from(body), 'input.jsonl'), purpose: 'batch' }));
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect(err['status']).toBe(500);
    }
    const file = await r.oai.files.create({ file: await toFile(Buffer.from(body), 'input.jsonl'), purpose: 'batch' });
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', bytes: Buffer.byteLength(body), filename: 'input.jsonl' });
    expect(await (await r.oai.files.content(file.id)).text()).toBe(body);
    expect(r.p.stats().batches).toMatchObject({ fileUploads: 1, fileUploadErrors: 2 });
    expect((await r.oai.files.list()).data.map((f) => f.id)).toEqual([file.id]);
    expect(await r.oai.files.delete(file.id)).toMatchObject({ id: file.id, deleted: true });
    expect(await caught(r.oai.files.retrieve(file.id))).toBeInstanceOf(OpenAI.NotFoundError);
    // A new profile starts the count again.
    r.p.setProfile('none:fileUploadErrors=1');
    expect(await caught(r.oai.files.create({ file: await toFile(Buffer.from(body), 'input.jsonl'), purpose: 'batch' }))).toBeInstanceOf(OpenAI.InternalServerError);
  });

  it('answers 500 to the first createErrors batch creations and drops the reply of the next createLostReplies (the batch exists)', async () => {
    const r = await rig('none:batchCreateErrors=1,batchCreateLostReplies=1');
    const file = await r.oai.files.create({ file: await toFile(Buffer.from(jsonl([{ id: 'a', text: 'Classify item 1' }])), 'input.jsonl'), purpose: 'batch' });
    const create = () => r.oai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { group: 'g1' } });
    const failed = await caught(create());
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect((await r.oai.batches.list()).data).toHaveLength(0);
    // Accepted, but the client never hears of it: the batch is listed, with its metadata.
    expect(await caught(create())).toBeInstanceOf(OpenAI.APIConnectionError);
    const listed = (await r.oai.batches.list()).data;
    expect(listed.map((b) => b.metadata)).toEqual([{ group: 'g1' }]);
    const third = await create();
    expect(third.id).not.toBe(listed[0]?.id);
    expect(r.p.stats().batches).toMatchObject({ created: 2, createErrors: 1, createLostReplies: 1 });
  });

  it('rejects bad input with a 400 that names the line and parameter', async () => {
    const r = await rig({ name: 'limits', batch: { maxRequests: 3, maxBytes: 4000 } });
    const two = [
      { id: 'a', text: 'Classify item 1' },
      { id: 'b', text: 'Classify item 2' },
    ];
    const cases: Array<[string, RegExp, string]> = [
      [jsonl([two[0]!, { id: 'a', text: 'x' }]), /line 2: the custom_id 'a' is a duplicate/, 'duplicate_custom_id'],
      [`${jsonl(two)}{not json\n`, /Invalid JSON on line 3/, 'invalid_json_line'],
      [jsonl(two, (row) => ({ ...row, url: '/v1/embeddings' })), /line 1: 'url' "\/v1\/embeddings" does not match/, 'mismatched_endpoint'],
      [jsonl(two, (row) => (row['custom_id'] === 'b' ? { ...row, body: { ...chatBody('y'), model: 'gpt-4o' } } : row)), /line 2: model 'gpt-4o' differs/, 'mismatched_model'],
      [jsonl([1, 2, 3, 4].map((i) => ({ id: `r${i}`, text: `${i}` }))), /more than 3 requests/, 'too_many_requests'],
    ];
    for (const [text, message, code] of cases) {
      const err = await caught(submit(r, text));
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.message).toMatch(message);
      expect(err['code']).toBe(code);
    }
    const file = await r.oai.files.create({ file: await toFile(Buffer.from(jsonl(two)), 'input.jsonl'), purpose: 'batch' });
    const wrongEndpoint = await caught(r.oai.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }));
    expect(wrongEndpoint).toBeInstanceOf(OpenAI.BadRequestError);
    expect(wrongEndpoint['param']).toBe('endpoint');
    const wrongWindow = await caught(r.oai.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '1h' as '24h' }));
    expect(wrongWindow['param']).toBe('completion_window');
    const missing = await caught(r.oai.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' }));
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    const big = jsonl([1, 2, 3].map((i) => ({ id: `r${i}`, text: 'x'.repeat(1500) })));
    const tooBig = await caught(r.oai.files.create({ file: await toFile(Buffer.from(big), 'input.jsonl'), purpose: 'batch' }));
    expect(tooBig).toBeInstanceOf(OpenAI.BadRequestError);
    expect(tooBig.message).toMatch(/File is too large: \d+ bytes; the limit for purpose 'batch' is 4000 bytes/);
    // Nothing was created by the rejected input.
    expect(r.p.stats().batches.created).toBe(0);
    expect(r.p.stats().requests).toBe(0);
  });

  it('cancels a running batch: cancelling, then cancelled with the unfinished requests batch_cancelled', async () => {
    const r = await rig('none:batchLatencyMs=1000');
    const b = await submit(r, jsonl([1, 2, 3, 4].map((i) => ({ id: `r${i}`, text: `Classify item ${i}` }))));
    r.advance(500);
    const c = await r.oai.batches.cancel(b.id);
    expect(c.status).toBe('cancelling');
    r.advance(1);
    const done = await r.oai.batches.retrieve(b.id);
    expect(done.status).toBe('cancelled');
    expect(done.request_counts).toEqual({ total: 4, completed: 2, failed: 2 });
    const errs = await lines(r, done.error_file_id);
    expect(errs.map((l) => l.error?.code)).toEqual(['batch_cancelled', 'batch_cancelled']);
    expect(await caught(r.oai.batches.cancel(b.id))).toBeInstanceOf(OpenAI.ConflictError);
    const list = await r.oai.batches.list();
    expect(list.data.map((x) => x.id)).toEqual([b.id]);
  });

  it('gives the same per-request outcomes for the same seed, and other ones for another seed', async () => {
    const profile: FaultProfile = {
      name: 'mixed',
      faults: [
        { kind: 'server_error', rate: 0.3 },
        { kind: 'rate_limit', rate: 0.2 },
        { kind: 'bad_json', rate: 0.1 },
      ],
      batch: { expireRate: 0.5 },
    };
    const rows = Array.from({ length: 24 }, (_, i) => ({ id: `r${i}`, text: `Classify item ${i}` }));
    const outcome = async (seed: number) => {
      const r = await rig(profile, seed);
      const b = await submit(r, jsonl(rows));
      r.advance(200);
      const done = await r.oai.batches.retrieve(b.id);
      const all = [...(await lines(r, done.output_file_id)), ...(await lines(r, done.error_file_id))];
      const byId = Object.fromEntries(all.map((l) => [l.custom_id, l.response ? String(l.response.status_code) : (l.error?.code ?? '')]));
      const contents = all.map((l) => JSON.stringify((l.response?.body as { choices?: unknown } | undefined)?.choices ?? null));
      return { status: done.status, byId, contents: contents.sort() };
    };
    const a = await outcome(7);
    const b = await outcome(7);
    expect(b).toEqual(a);
    // The faults are really there: some requests failed, some succeeded.
    const values = Object.values(a.byId);
    expect(values).toContain('200');
    expect(values.some((v) => v !== '200')).toBe(true);
    const seeds = await Promise.all([8, 9, 10].map((s) => outcome(s)));
    expect(seeds.some((o) => JSON.stringify(o.byId) !== JSON.stringify(a.byId))).toBe(true);
  });
});

describe('batch expiry', () => {
  it('decides which batches expire per (seed, input): the same seed expires the same batches', async () => {
    const statuses = async (seed: number) => {
      const r = await rig('none:batchExpireRate=0.5,batchExpireAnswered=0', seed);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push((await r.ant.messages.batches.create({ requests: [antRequest('only', `Extract item ${i}`)] })).id);
      r.advance(200);
      return Promise.all(ids.map(async (id) => (await r.ant.messages.batches.retrieve(id)).request_counts.expired));
    };
    const a = await statuses(1);
    expect(await statuses(1)).toEqual(a);
    expect(a).toContain(0);
    expect(a).toContain(1);
    const others = await Promise.all([2, 3].map((s) => statuses(s)));
    expect(others.some((o) => JSON.stringify(o) !== JSON.stringify(a))).toBe(true);
  });
});

describe('the provider clock', () => {
  it('moves forward through POST /admin/clock, so a batch of a provider in another process ends without waiting', async () => {
    const p = await startProvider({ latencyScale: 0, profile: 'none:batchLatencyMs=3600000' });
    open.push(p);
    const ant = new Anthropic({ baseURL: p.url, apiKey: 'test', maxRetries: 0 });
    const b = await ant.messages.batches.create({ requests: [antRequest('a', 'Extract item 1')] });
    expect((await ant.messages.batches.retrieve(b.id)).processing_status).toBe('in_progress');
    const bad = await fetch(`${p.url}/admin/clock`, { method: 'POST', body: JSON.stringify({ advanceMs: -5 }) });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/advanceMs must be a non-negative number/);
    const res = await fetch(`${p.url}/admin/clock`, { method: 'POST', body: JSON.stringify({ advanceMs: 3_600_000 }) });
    const moved = (await res.json()) as { now: string };
    expect(Date.parse(moved.now) - Date.now()).toBeGreaterThan(3_590_000);
    const done = await ant.messages.batches.retrieve(b.id);
    expect(done.processing_status).toBe('ended');
    expect(done.request_counts.succeeded).toBe(1);
    expect(p.advanceClock(0)).toBeGreaterThanOrEqual(Date.parse(moved.now));
  });
});

describe('Anthropic Message Batches', () => {
  it('answers 529 overloaded to the first createErrors creations (nothing created), then creates', async () => {
    const r = await rig({ name: 'create-529', batch: { createErrors: 2 } });
    for (let i = 0; i < 2; i++) {
      const err = await caught(r.ant.messages.batches.create({ requests: [antRequest('a', 'Extract 1')] }));
      expect(err['status']).toBe(529);
    }
    expect((await r.ant.messages.batches.list()).data).toHaveLength(0);
    const b = await r.ant.messages.batches.create({ requests: [antRequest('a', 'Extract 1')] });
    expect(b.processing_status).toBe('in_progress');
    expect(r.p.stats().batches).toMatchObject({ created: 1, createErrors: 2 });
  });

  it('runs a batch: in_progress until batchLatencyMs, then ended with succeeded and errored results', async () => {
    const r = await rig();
    const texts = ['Extract item 1: parcel lost', 'Extract item 2 [[fault:overloaded]]', 'Extract item 3 [[fault:rate_limit]]'];
    const created = await r.ant.messages.batches.create({ requests: texts.map((t, i) => antRequest(`req_${i}`, t)) });
    expect(created).toMatchObject({ type: 'message_batch', processing_status: 'in_progress', results_url: null, ended_at: null });
    expect(created.id).toMatch(/^msgbatch_/);
    expect(created.request_counts).toEqual({ processing: 3, succeeded: 0, errored: 0, canceled: 0, expired: 0 });
    expect(Date.parse(created.expires_at) - Date.parse(created.created_at)).toBe(24 * 3600 * 1000);
    const early = await caught(results(r, created.id));
    expect(early.message).toMatch(/No batch `results_url`/);

    r.advance(200);
    const done = await r.ant.messages.batches.retrieve(created.id);
    expect(done.processing_status).toBe('ended');
    expect(done.ended_at).toBe(new Date(T0 + 200).toISOString());
    expect(done.request_counts).toEqual({ processing: 0, succeeded: 1, errored: 2, canceled: 0, expired: 0 });
    expect(done.results_url).toBe(`${r.p.url}/v1/messages/batches/${created.id}/results`);
    const res = await results(r, created.id);
    expect(res.map((x) => [x.custom_id, x.result.type])).toEqual([
      ['req_0', 'succeeded'],
      ['req_1', 'errored'],
      ['req_2', 'errored'],
    ]);
    const ok = res[0]?.result;
    const block = ok?.type === 'succeeded' ? ok.message.content[0] : undefined;
    expect(block?.type === 'tool_use' ? block.input : undefined).toEqual(expectedAnswer(schema, texts[0] ?? ''));
    const sync = await rig();
    const direct = await sync.ant.messages.create(antRequest('x', texts[0] ?? '').params);
    expect(ok?.type === 'succeeded' ? ok.message.usage : undefined).toEqual(direct.usage);
    const over = res[1]?.result;
    expect(over?.type === 'errored' ? over.error : undefined).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    const limited = res[2]?.result;
    expect(limited?.type === 'errored' ? limited.error : undefined).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    expect(r.p.stats().batches).toMatchObject({ created: 1, byApi: { anthropic: 1 }, requests: 3, results: { succeeded: 1, errored: 2 } });
    expect(r.p.stats().costUsd).toBeCloseTo(sync.p.stats().costUsd / 2, 5);
    expect(r.p.stats().costUsd).toBeLessThan(sync.p.stats().costUsd * 0.6);
  });

  it('reports invalid params of one request as that request errored, not the batch', async () => {
    const r = await rig();
    const good = antRequest('good', 'Extract item 1');
    const bad = { custom_id: 'bad', params: { model: ANT_MODEL, messages: [{ role: 'user', content: 'hi' }] } } as unknown as typeof good;
    const b = await r.ant.messages.batches.create({ requests: [good, bad] });
    r.advance(200);
    const res = await results(r, b.id);
    const err = res[1]?.result;
    expect(err?.type).toBe('errored');
    expect(err?.type === 'errored' ? err.error.error : undefined).toMatchObject({ type: 'invalid_request_error', message: 'max_tokens: Field required' });
  });

  it('expires a batch with part of its results', async () => {
    const r = await rig({ name: 'expire', batch: { expireRate: 1, expireAnswered: 0.25, latencyMs: 5000 } });
    const b = await r.ant.messages.batches.create({ requests: [1, 2, 3, 4].map((i) => antRequest(`r${i}`, `Extract item ${i}`)) });
    r.advance(4999);
    expect((await r.ant.messages.batches.retrieve(b.id)).processing_status).toBe('in_progress');
    r.advance(1);
    const done = await r.ant.messages.batches.retrieve(b.id);
    expect(done.processing_status).toBe('ended');
    expect(done.request_counts).toEqual({ processing: 0, succeeded: 1, errored: 0, canceled: 0, expired: 3 });
    const res = await results(r, b.id);
    expect(res.map((x) => x.result.type).sort()).toEqual(['expired', 'expired', 'expired', 'succeeded']);
  });

  it('lists batches newest first in pages: limit, after_id (older), before_id (newer), has_more, first_id, last_id', async () => {
    const r = await rig();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await r.ant.messages.batches.create({ requests: [antRequest(`r${i}`, `Extract item ${i}`)] })).id);
    const newest = [...ids].reverse();
    const first = await r.ant.messages.batches.list({ limit: 2 });
    expect(first.data.map((b) => b.id)).toEqual(newest.slice(0, 2));
    expect(first).toMatchObject({ has_more: true, first_id: newest[0], last_id: newest[1] });
    const older = await r.ant.messages.batches.list({ limit: 2, after_id: newest[1]! });
    expect(older.data.map((b) => b.id)).toEqual(newest.slice(2, 4));
    const last = await r.ant.messages.batches.list({ limit: 2, after_id: newest[3]! });
    expect(last).toMatchObject({ has_more: false, first_id: newest[4], last_id: newest[4] });
    const newer = await r.ant.messages.batches.list({ limit: 2, before_id: newest[3]! });
    expect(newer.data.map((b) => b.id)).toEqual(newest.slice(1, 3));
    expect(newer.has_more).toBe(true);
    // The SDK's auto-pagination follows last_id as after_id to the oldest batch.
    const all: string[] = [];
    for await (const b of r.ant.messages.batches.list({ limit: 2 })) all.push(b.id);
    expect(all).toEqual(newest);
    // Default page of 20; a limit out of 1..1000 is a 400 naming it.
    expect((await r.ant.messages.batches.list()).data).toHaveLength(5);
    const err = await caught(r.ant.messages.batches.list({ limit: 0 }));
    expect(err['status']).toBe(400);
    expect(String(err['message'])).toContain('limit');
  });

  it('drops the reply of the first createLostReplies creations: the batch exists and is listed', async () => {
    const r = await rig('none:batchCreateLostReplies=1');
    const err = await caught(r.ant.messages.batches.create({ requests: [antRequest('a', 'Extract 1')] }));
    expect(err).toBeInstanceOf(Anthropic.APIConnectionError);
    const listed = (await r.ant.messages.batches.list()).data;
    expect(listed).toHaveLength(1);
    expect(listed[0]!.request_counts.processing).toBe(1);
    expect(r.p.stats().batches).toMatchObject({ created: 1, createLostReplies: 1, byApi: { anthropic: 1 } });
  });

  it('cancels a running batch: canceling, then ended with the rest canceled', async () => {
    const r = await rig('none:batchLatencyMs=1000');
    const b = await r.ant.messages.batches.create({ requests: [1, 2].map((i) => antRequest(`r${i}`, `Extract item ${i}`)) });
    const c = await r.ant.messages.batches.cancel(b.id);
    expect(c.processing_status).toBe('canceling');
    expect(c.cancel_initiated_at).toBe(new Date(T0).toISOString());
    r.advance(1);
    const done = await r.ant.messages.batches.retrieve(b.id);
    expect(done.processing_status).toBe('ended');
    expect(done.request_counts).toEqual({ processing: 0, succeeded: 0, errored: 0, canceled: 2, expired: 0 });
    expect((await results(r, b.id)).map((x) => x.result.type)).toEqual(['canceled', 'canceled']);
    expect((await r.ant.messages.batches.list()).data.map((x) => x.id)).toEqual([b.id]);
  });

  it('rejects a bad batch with a 400 that names the request', async () => {
    const r = await rig({ name: 'limits', batch: { maxRequests: 2 } });
    const cases: Array<[Anthropic.Messages.BatchCreateParams['requests'], RegExp]> = [
      [[antRequest('a', 'x'), antRequest('a', 'y')], /requests\.1\.custom_id: 'a' is a duplicate/],
      [[antRequest('has space', 'x')], /requests\.0\.custom_id: String should match pattern/],
      [[], /at least 1 item/],
      [[1, 2, 3].map((i) => antRequest(`r${i}`, 'x')), /at most 2 requests, got 3/],
    ];
    for (const [requests, message] of cases) {
      const err = await caught(r.ant.messages.batches.create({ requests }));
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect(err.message).toMatch(message);
    }
    expect(await caught(r.ant.messages.batches.retrieve('msgbatch_nope'))).toBeInstanceOf(Anthropic.NotFoundError);
    expect(r.p.stats().batches.created).toBe(0);
  });

  it('checks the API key on the batch endpoints of both wires', async () => {
    let t = T0;
    const p = await startProvider({ latencyScale: 0, apiKey: 'right', now: () => t });
    open.push(p);
    const ant = new Anthropic({ baseURL: p.url, apiKey: 'wrong', maxRetries: 0 });
    const oai = new OpenAI({ baseURL: `${p.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    expect(await caught(ant.messages.batches.create({ requests: [antRequest('a', 'x')] }))).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(await caught(oai.batches.list())).toBeInstanceOf(OpenAI.AuthenticationError);
    const good = new Anthropic({ baseURL: p.url, apiKey: 'right', maxRetries: 0 });
    const b = await good.messages.batches.create({ requests: [antRequest('a', 'Extract item 1')] });
    t += 200;
    // Requests inside an accepted batch are not checked again.
    expect((await good.messages.batches.retrieve(b.id)).request_counts.succeeded).toBe(1);
  });
});
