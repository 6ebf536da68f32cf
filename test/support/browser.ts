/**
 * A real browser for page tests: Debian's Chromium driven by playwright-core.
 * Missing Chromium skips the test locally with a note, and fails under CI
 * (scripts/setup.sh installs it there), so a browser test is never silently lost.
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';

/** Where Debian's `chromium` package puts the browser; STEADFAST_CHROMIUM overrides. */
export const CHROMIUM = process.env.STEADFAST_CHROMIUM ?? '/usr/bin/chromium';

/** True when the browser is here; under CI its absence is an error. */
export function haveChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI) throw new Error(`no Chromium at ${CHROMIUM}: browser tests cannot run (scripts/setup.sh installs the chromium package as root)`);
  console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  return false;
}

/** Launches headless Chromium (no sandbox: CI runs as root). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}
