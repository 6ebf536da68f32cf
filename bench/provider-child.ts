/**
 * The fault-injecting provider in a process of its own, with a fixed latency per
 * call, for the benchmark and the chaos run. Unlike `npm run provider`, the
 * latency is set in milliseconds (every model: `fixed + jitter * u`) rather than
 * as a scale of the 20-30 ms default, so "1 s latency" means 1 s.
 *
 *   node bench/provider-child.ts --profile none --seed 1 --latency-ms 1000 --jitter-ms 0
 *
 * Prints `provider listening on <url>` once ready; SIGTERM closes it.
 * Admin (stats, profile, reset) over HTTP as in docs/provider.md.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_MODELS, startProvider } from '../src/provider/index.ts';

const { values } = parseArgs({
  options: {
    profile: { type: 'string', default: 'none' },
    seed: { type: 'string', default: '1' },
    port: { type: 'string', default: '0' },
    'latency-ms': { type: 'string', default: '0' },
    'jitter-ms': { type: 'string', default: '0' },
  },
});

const fixed = Number(values['latency-ms']);
const jitter = Number(values['jitter-ms']);
const provider = await startProvider({
  port: Number(values.port),
  profile: values.profile,
  seed: Number(values.seed),
  // latencyScale 1 with our own latencies; 0 ms everywhere when both are 0.
  models: DEFAULT_MODELS.map((m) => ({ ...m, latencyMs: { fixed, jitter } })),
  latencyScale: 1,
});
console.log(`provider listening on ${provider.url} (profile ${values.profile}, latency ${fixed}+${jitter} ms)`);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    void provider.close().then(() => process.exit(0));
  });
}
