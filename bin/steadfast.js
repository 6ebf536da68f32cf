#!/usr/bin/env node
// `npx steadfast ...`: Node (>= 22.18) runs the TypeScript source directly by stripping its types.
import { runMain } from '../src/client/cli.ts';

await runMain();
