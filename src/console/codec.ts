/**
 * The console as a codec server for the Temporal Web UI and CLI: `POST /codec/decode`
 * (and `/codec/<namespace>/decode`, for the CLI's templated endpoint) turns
 * claim-checked payloads back into the payloads they stand for, so the Web UI shows a
 * large item or answer instead of its key. Read-only: there is no `/encode`.
 *
 * The body is the codec server protocol's proto3 JSON: `{"payloads":[{"metadata":
 * {"encoding":"<base64>"},"data":"<base64>"}]}`, answered in the same shape.
 */
import type { Payload } from '@temporalio/common';
import type { Context, Hono } from 'hono';
import { cors } from 'hono/cors';

/** What the routes need: the claim-check codec's decode, and the Web UI origins allowed to call it. */
export interface CodecRoutes {
  decode(payloads: Payload[]): Promise<Payload[]>;
  origins: readonly string[];
}

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fromJson(p: unknown, i: number): Payload {
  if (typeof p !== 'object' || p === null) throw new Error(`payloads[${i}] is not an object`);
  const { metadata = {}, data = '' } = p as JsonPayload;
  if (typeof data !== 'string' || !B64.test(data)) throw new Error(`payloads[${i}].data is not base64`);
  if (typeof metadata !== 'object' || metadata === null) throw new Error(`payloads[${i}].metadata is not an object`);
  const meta: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string' || !B64.test(v)) throw new Error(`payloads[${i}].metadata.${k} is not base64`);
    meta[k] = Buffer.from(v, 'base64');
  }
  return { metadata: meta, data: Buffer.from(data, 'base64') };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}

/** CORS for the Web UI's calls; registered before authentication, so a preflight needs no token. */
export function codecCors(app: Hono, routes: CodecRoutes): void {
  app.use(
    '/codec/*',
    cors({
      origin: [...routes.origins],
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['content-type', 'x-namespace', 'authorization'],
      credentials: true,
      maxAge: 600,
    }),
  );
}

/** The decode routes; registered after authentication and before the CSRF check (they change nothing). */
export function codecRoutes(app: Hono, routes: CodecRoutes): void {
  const decode = async (c: Context) => {
    let payloads: Payload[];
    try {
      const body = (await c.req.json()) as { payloads?: unknown };
      if (!Array.isArray(body?.payloads)) throw new Error('the body must be {"payloads": [...]}');
      payloads = body.payloads.map(fromJson);
    } catch (err) {
      return c.json({ error: `bad codec request: ${err instanceof Error ? err.message : String(err)}` }, 400);
    }
    try {
      return c.json({ payloads: (await routes.decode(payloads)).map(toJson) });
    } catch (err) {
      return c.json({ error: err instanceof Error ? err.message : String(err) }, 502);
    }
  };
  app.post('/codec/decode', decode);
  app.post('/codec/:namespace/decode', decode);
}
