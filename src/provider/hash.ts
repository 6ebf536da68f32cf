/**
 * Stable hashing: every "random" choice of the provider (fault, latency jitter,
 * answer values) is a hash of its inputs, so one seed replays one run exactly.
 */
import { createHash } from 'node:crypto';

/** Hex SHA-256 of the given parts, joined by a separator that cannot occur in JSON text. */
export function hashHex(...parts: readonly (string | number)[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

/** A uniform number in [0, 1) derived from the parts (48 bits of their SHA-256). */
export function unitHash(...parts: readonly (string | number)[]): number {
  const hex = hashHex(...parts).slice(0, 12);
  return Number.parseInt(hex, 16) / 2 ** 48;
}

/** A non-negative integer below 2^48 derived from the parts. */
export function intHash(...parts: readonly (string | number)[]): number {
  return Number.parseInt(hashHex(...parts).slice(0, 12), 16);
}
