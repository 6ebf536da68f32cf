/**
 * Small waits shared by integration tests: poll until a condition holds, and a local
 * webhook that records what alerts post.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Reads until `ok` holds or `tries` reads (100 ms apart) are spent; returns the last read. */
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, tries = 300): Promise<T> {
  let v = await read();
  for (let i = 0; i < tries && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 100));
    v = await read();
  }
  return v;
}

/** A webhook on 127.0.0.1 that keeps every JSON body posted to it. */
export interface WebhookSink {
  url: string;
  posts: { text: string }[];
  close(): void;
}

export async function startWebhookSink(): Promise<WebhookSink> {
  const posts: { text: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      posts.push(JSON.parse(body) as { text: string });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, posts, close: () => server.close() };
}
