/**
 * A counting HTTP proxy in front of the provider. Each worker gets its own
 * prefix (`http://127.0.0.1:PORT/w/<slot>`, used as STEADFAST_SIMULATED_PROVIDER_URL), so
 * every LLM call is attributed to the worker process that made it: which calls
 * were in flight when that worker was killed, and which item each call was for.
 */
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One LLM call as the proxy saw it. */
export interface CallRecord {
  slot: string;
  /**
   * Item id parsed from the prompt (`Ticket <id> from ...`), or null. A multi-step prompt
   * that names its step (`Step <name>:`) gives `<id>#<name>`: each step is its own call to count.
   */
  itemId: string | null;
  startedAt: number;
  /** When the answer was fully sent back, or the caller went away; null while open. */
  endedAt: number | null;
  status: number | null;
  /** The caller disconnected before the answer was delivered (e.g. it was killed). */
  aborted: boolean;
}

export interface CountingProxy {
  url: string;
  /** Base URL for one worker slot. */
  urlFor(slot: string): string;
  calls: CallRecord[];
  /** Calls of a slot still open now. */
  inFlight(slot?: string): CallRecord[];
  close(): Promise<void>;
}

const ITEM_RE = /Ticket (\S+) from/;
const STEP_RE = /\bStep (\w+):/;

function itemOf(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as { messages?: { role: string; content: unknown }[] };
    for (const m of parsed.messages ?? []) {
      const hit = typeof m.content === 'string' ? ITEM_RE.exec(m.content) : null;
      if (hit?.[1]) {
        const step = STEP_RE.exec(m.content as string)?.[1];
        return step ? `${hit[1]}#${step}` : hit[1];
      }
    }
  } catch {
    // not JSON: no item
  }
  return null;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const calls: CallRecord[] = [];
  const server = createServer((req, res) => {
    const m = /^\/w\/([^/]+)(\/.*)$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const slot = m[1]!;
    const path = m[2]!;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const isChat = req.method === 'POST' && /\/chat\/completions$|\/messages$/.test(path);
      const rec: CallRecord | null = isChat ? { slot, itemId: itemOf(body.toString('utf8')), startedAt: Date.now(), endedAt: null, status: null, aborted: false } : null;
      if (rec) calls.push(rec);
      const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
      const up = request({ agent, host: upstream.hostname, port: upstream.port, method: req.method, path, headers }, (ur) => {
        if (rec) rec.status = ur.statusCode ?? null;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      // The worker went away (SIGKILL closes its sockets): cancel the call upstream too.
      res.on('close', () => {
        if (rec && rec.endedAt === null) {
          rec.endedAt = Date.now();
          rec.aborted = !res.writableFinished;
        }
        if (!res.writableFinished) up.destroy();
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    urlFor: (slot) => `${url}/w/${slot}`,
    calls,
    inFlight: (slot) => calls.filter((c) => c.endedAt === null && (slot === undefined || c.slot === slot)),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}
