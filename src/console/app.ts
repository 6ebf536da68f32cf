/**
 * The console's routes (Hono): the page, its fragments, and the decisions.
 *
 * Safety: a token (Bearer header, or an HttpOnly SameSite=Strict cookie set by
 * `/login?token=`) or a trusted proxy header guards every route when configured;
 * state-changing requests need the page's CSRF token in a header (a cross-site
 * form cannot set one) and a same-origin Origin (hono/csrf); secure headers
 * with a script-src 'self' policy. The reviewer is the proxy's user when a
 * proxy header is configured, else the name the person typed.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { csrf } from 'hono/csrf';
import { secureHeaders } from 'hono/secure-headers';
import type { BatchReviewDecision, ReviewDecision, ReviewDetails } from '../shared/messages.ts';
import { parseJsonOutput, validateOutput } from '../shared/validate.ts';
import type { ConsoleConfig } from './config.ts';
import { codecCors, codecRoutes } from './codec.ts';
import type { CodecRoutes } from './codec.ts';
import type { ConsoleData, QueueFilter } from './data.ts';
import { batchesFragment, itemFragment, itemStatusFragment, page, problemFragment, queueFragment, resultsFragment, validationFragment } from './views.ts';

const COOKIE = 'steadfast_console';
/** Most items one bulk request may decide. */
export const BULK_LIMIT = 500;

function sha(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison of two secrets. */
function same(a: string, b: string): boolean {
  return timingSafeEqual(sha(a), sha(b));
}

const STATIC: Record<string, { type: string; body: string }> = {
  'htmx.min.js': { type: 'text/javascript', body: readFileSync(fileURLToPath(import.meta.resolve('htmx.org/dist/htmx.min.js')), 'utf8') },
  'console.js': { type: 'text/javascript', body: readFileSync(fileURLToPath(new URL('./static/console.js', import.meta.url)), 'utf8') },
  'console.css': { type: 'text/css', body: readFileSync(fileURLToPath(new URL('./static/console.css', import.meta.url)), 'utf8') },
};

function filterOf(q: (name: string) => string | undefined): QueueFilter {
  const age = Number(q('minAge') ?? 0);
  return { batchId: q('batch') || undefined, errorType: q('errorType') || undefined, minAgeSeconds: Number.isFinite(age) && age > 0 ? age : undefined };
}

/** Form fields as strings (the first of repeated names) and the list of `sel` values. */
async function form(c: Context): Promise<{ get: (k: string) => string; sel: string[]; all: Record<string, string> }> {
  const body = await c.req.parseBody({ all: true });
  const one = (v: unknown): string => (Array.isArray(v) ? one(v[0]) : typeof v === 'string' ? v : '');
  const all = Object.fromEntries(Object.entries(body).map(([k, v]) => [k, one(v)]));
  const selRaw = body['sel'];
  const sel = (Array.isArray(selRaw) ? selRaw : selRaw === undefined ? [] : [selRaw]).filter((v): v is string => typeof v === 'string');
  return { get: (k) => all[k] ?? '', sel, all };
}

/** Builds the console's Hono app over the given data source. */
export function createApp(data: ConsoleData, config: ConsoleConfig, codec?: CodecRoutes): Hono {
  const app = new Hono();
  if (codec) codecCors(app, codec);
  const csrfToken = randomBytes(24).toString('base64url');

  app.use(
    '*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        frameAncestors: ["'none'"],
        formAction: ["'self'"],
      },
      referrerPolicy: 'no-referrer',
    }),
  );

  // Sign-in: the token once in the URL becomes an HttpOnly cookie, and the URL is left at once.
  app.get('/login', (c) => {
    const given = c.req.query('token') ?? '';
    if (!config.token || !same(given, config.token)) return c.text('wrong or missing token', 401);
    setCookie(c, COOKIE, given, { httpOnly: true, sameSite: 'Strict', path: '/', secure: c.req.url.startsWith('https:') });
    return c.redirect('/');
  });

  const auth: MiddlewareHandler = async (c, next) => {
    if (config.authHeader && !c.req.header(config.authHeader)?.trim()) return c.text(`sign in through the proxy: header ${config.authHeader} missing`, 401);
    if (config.token) {
      const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
      const given = bearer ?? getCookie(c, COOKIE) ?? '';
      if (!same(given, config.token)) return c.text('sign in: open /login?token=<STEADFAST_CONSOLE_TOKEN>, or send Authorization: Bearer <token>', 401);
    }
    await next();
  };
  app.use('*', auth);
  app.get('/healthz', (c) => c.text('ok'));
  app.get('/static/:file', (c) => {
    const f = STATIC[c.req.param('file')];
    if (!f) return c.notFound();
    return c.body(f.body, 200, { 'content-type': `${f.type}; charset=utf-8`, 'cache-control': 'no-cache' });
  });

  // The Web UI's codec calls come from its own origin, with no CSRF token; they only read.
  if (codec) codecRoutes(app, codec);

  // Unsafe methods: same origin and the page's CSRF token.
  app.use('*', csrf());
  app.use('*', async (c, next) => {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !same(c.req.header('x-csrf-token') ?? '', csrfToken))
      return c.text('missing or wrong CSRF token: reload the page', 403);
    await next();
  });

  const proxyUser = (c: Context): string | null => (config.authHeader ? (c.req.header(config.authHeader)?.trim() ?? null) : null);
  const reviewerOf = (c: Context, typed: string): string | null => proxyUser(c) ?? (typed.trim() || null);

  app.get('/', (c) => c.html(page({ csrfToken, pollSeconds: config.pollSeconds, proxyUser: proxyUser(c) })));

  app.get('/fragments/batches', async (c) => {
    const rows = await data.batches();
    const filter = filterOf((k) => c.req.query(k));
    return c.html(batchesFragment(rows, data.queue(rows, {}), filter));
  });

  app.get('/fragments/queue', async (c) => {
    const rows = await data.batches();
    const selected = new Set(c.req.queries('sel') ?? []);
    return c.html(
      queueFragment(
        data.queue(
          rows,
          filterOf((k) => c.req.query(k)),
        ),
        selected,
        Date.now(),
      ),
    );
  });

  const withItem = async (c: Context, render: (d: ReviewDetails) => ReturnType<typeof itemFragment>) => {
    const batch = c.req.query('batch') ?? '';
    const item = c.req.query('item') ?? '';
    const d = await data.details(batch, item).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    if (d instanceof Error) return c.html(problemFragment(`item ${item} of batch ${batch} did not answer (${d.message}); is a worker running?`));
    if (d === null) return c.html(problemFragment(`no item ${item} in batch ${batch}`));
    return c.html(render(d));
  };
  app.get('/fragments/item', (c) => withItem(c, (d) => itemFragment(d, config.pollSeconds)));
  app.get('/fragments/item-status', (c) => {
    const q = new URLSearchParams({ batch: c.req.query('batch') ?? '', item: c.req.query('item') ?? '' }).toString();
    return withItem(c, (d) => itemStatusFragment(d, q, config.pollSeconds));
  });

  // Live check of the output editor: the project's validator, the schema the item workflow reports.
  app.post('/validate', async (c) => {
    const f = await form(c);
    const d = await data.details(f.get('batch'), f.get('item'));
    if (!d) return c.html(problemFragment('the item is gone'));
    const text = f.get('output');
    if (text.trim() === '') return c.html(validationFragment(null));
    if (d.output.format !== 'json') return c.html(validationFragment([]));
    const parsed = parseJsonOutput(text);
    return c.html(validationFragment(parsed.ok ? validateOutput(parsed.value, d.output.schema) : [parsed.error]));
  });

  const done = (c: Context, body: ReturnType<typeof resultsFragment>) => {
    c.header('HX-Trigger', 'queue-changed');
    return c.html(body);
  };

  app.post('/decide/:decision', async (c) => {
    const decision = c.req.param('decision') as ReviewDecision['decision'];
    if (!['approve', 'retry', 'skip'].includes(decision)) return c.html(problemFragment(`unknown decision ${decision}`), 400);
    const f = await form(c);
    const batchId = f.get('batch');
    const itemId = f.get('item');
    const reviewer = reviewerOf(c, f.get('reviewer'));
    if (!reviewer) return c.html(problemFragment('Enter your name at the top of the page: every decision records who made it.'));
    const d: BatchReviewDecision = { itemId, decision, reviewer, ...(f.get('note').trim() ? { note: f.get('note').trim() } : {}) };
    const details = await data.details(batchId, itemId);
    if (!details) return c.html(problemFragment(`no item ${itemId} in batch ${batchId}`));
    if (decision === 'approve' && f.get('output').trim() !== '') {
      // Checked here before anything is sent; the workflow's validator checks again.
      if (details.output.format === 'json') {
        const parsed = parseJsonOutput(f.get('output'));
        const errors = parsed.ok ? validateOutput(parsed.value, details.output.schema) : [parsed.error];
        if (errors.length) return c.html(problemFragment(`Not sent: the output does not match the schema: ${errors.join('; ')}`));
        d.output = parsed.ok ? parsed.value : undefined;
      } else d.output = f.get('output');
    }
    if (decision === 'retry') {
      const changed: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(details.input)) {
        if (k === 'id' || details.secretFields.includes(k) || !(`field.${k}` in f.all)) continue;
        const text = f.get(`field.${k}`);
        let value: unknown = text;
        if (typeof v !== 'string') {
          try {
            value = JSON.parse(text);
          } catch (err) {
            return c.html(problemFragment(`Not sent: field ${k} must be JSON (${err instanceof Error ? err.message : String(err)})`));
          }
        }
        if (JSON.stringify(value) !== JSON.stringify(v)) changed[k] = value;
      }
      if (Object.keys(changed).length) d.input = changed;
      if (f.get('provider')) d.provider = f.get('provider');
    }
    return done(c, resultsFragment([await data.decide(batchId, d)], `${decision} ${itemId}`));
  });

  app.post('/bulk', async (c) => {
    const f = await form(c);
    const decision = f.get('decision') as ReviewDecision['decision'];
    if (!['approve', 'retry', 'skip'].includes(decision)) return c.html(problemFragment(`unknown decision ${decision}`), 400);
    const reviewer = reviewerOf(c, f.get('reviewer'));
    if (!reviewer) return c.html(problemFragment('Enter your name at the top of the page: every decision records who made it.'));
    if (f.sel.length === 0) return c.html(problemFragment('Select the items first (the checkbox in the header selects every item shown).'));
    if (f.sel.length > BULK_LIMIT) return c.html(problemFragment(`At most ${BULK_LIMIT} items at once; narrow the filter.`));
    const targets = f.sel.map((s) => ({ batchId: s.slice(0, s.indexOf('/')), itemId: s.slice(s.indexOf('/') + 1) }));
    const note = f.get('note').trim();
    const results = await data.decideMany(targets, { decision, reviewer, ...(note ? { note } : {}) });
    return done(c, resultsFragment(results, `bulk ${decision}`));
  });

  return app;
}
